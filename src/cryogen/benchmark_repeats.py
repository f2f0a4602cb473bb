"""A benchmark repeated over seeds, summarised by medians (``cryogen benchmark --repeats N``).

One benchmark run (:func:`cryogen.benchmark.run_benchmark`) is one draw: on these phantoms
two runs of the same algorithm with other random draws differ by up to ~1 dB, as much as the
two methods differ.  A repeated benchmark runs the case with seeds ``seed, seed + 1, ...``
(each seed changes the phantoms' random parts, the subtomogram origins and every training
draw, for both methods alike), then reports per metric the median and range of each method
and the *paired* differences CryoGEN - IsoNet-style (same seed, same data): their median
and how many seeds CryoGEN is ahead on.  Time to quality is summarised the same way, and
issue 3's stability criterion (:func:`cryogen.benchmark.largest_drop`) per seed and over them.

Output folder of :func:`run_benchmark_repeats`::

    DIR/seed_<S>/             one complete single-run benchmark folder per seed
    DIR/results.json          settings, per-seed scores, medians, paired differences
                              (rewritten after every seed, so a crash loses no finished seed)
    DIR/results.md            the table
    DIR/repeats.png           PSNR and global SSIM of both methods per seed, medians marked

``resume=True`` keeps every seed folder that already holds a complete run with the same
settings (all but the seed) and runs only the others: a crashed or stopped repeat continues
where it stopped, and more seeds can be added to a finished one.  Whether the two methods
train at the same time is decided once for all seeds; left to the default, a resumed repeat
keeps what its finished seeds did.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryogen.benchmark import (
    METHOD_LABELS,
    METHODS,
    PAPER_LABELS,
    PAPER_TABLE1,
    PSNR_TARGETS,
    STABILITY_CAPTION,
    STABLE_DROP_DB,
    TABLE_METRICS,
    BenchmarkSettings,
    Say,
    case_lines,
    format_metric,
    largest_drop,
    make_output_dir,
    run_benchmark,
    stability_target,
)
from cryogen.errors import InputError, OutputError
from cryogen.io import write_json, write_text_atomic

__all__ = [
    "REPEATS_FORMAT",
    "HIGHER_IS_BETTER",
    "run_benchmark_repeats",
    "summarise_repeats",
    "render_repeats_markdown",
    "repeats_figure",
]

REPEATS_FORMAT = "cryogen-benchmark-repeats-1"

#: Direction of each metric of :data:`cryogen.benchmark.TABLE_METRICS` (resolutions and MSE:
#: lower is better).
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim_global": True,
    "ssim_windowed": True,
    "wedge_corr": True,
    "res_z": False,
    "res_x": False,
    "fsc_res": False,
    "mse": False,
}

# settings that may differ between the seeds of one repeat (or are recorded, not chosen)
_PER_SEED_KEYS = ("seed", "device_used")


def _seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed_{seed}"


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings two seeds of one repeat must share (defaults filled in for fields that
    older results files lack)."""
    defaults = {
        f.name: (f.default if f.default is not dataclasses.MISSING else None)
        for f in dataclasses.fields(BenchmarkSettings)
    }
    defaults["overrides"] = {}
    defaults["concurrent"] = False  # results from before the option ran one after the other
    merged = {**defaults, **settings}
    return {k: v for k, v in merged.items() if k not in _PER_SEED_KEYS}


def _finished_results(path: Path) -> dict[str, Any] | None:
    """The ``results.json`` of a finished single run in ``path``, else None (none, unreadable
    or unfinished)."""
    try:
        res = json.loads((path / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("status") == "complete" else None


def _completed_run(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The results of a finished single run in ``path`` if its settings match, else None.

    Raises ``OutputError`` when the folder holds a complete run of *other* settings (resuming
    would mix two benchmarks)."""
    res = _finished_results(path)
    if res is None:
        return None
    theirs, ours = _comparable(res.get("settings", {})), _comparable(settings)
    # JSON turns tuples into lists: compare through JSON
    if json.dumps(theirs, sort_keys=True) != json.dumps(ours, sort_keys=True):
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise OutputError(
            f"{path}: holds a finished benchmark with other settings ({', '.join(diff)}); "
            "use another output folder, or --overwrite to run every seed again"
        )
    return res


def _decide_concurrent(
    s: BenchmarkSettings, out: Path, seeds: list[int], resume: bool
) -> BenchmarkSettings:
    """``s`` with ``concurrent`` decided once for every seed: as given; where None and
    resuming, as the seeds already finished in ``out`` ran (folders older than the option
    ran one after the other); else as :meth:`BenchmarkSettings.resolved` chooses."""
    if s.concurrent is None and resume:
        for seed in seeds:
            res = _finished_results(_seed_dir(out, seed))
            if res is not None:
                return replace(s, concurrent=bool(res.get("settings", {}).get("concurrent")))
    return s.resolved()


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(vals)) if vals else None


def summarise_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians, ranges and paired differences over the seeds of a repeated benchmark.

    Parameters
    ----------
    runs
        The ``results.json`` contents of complete single runs (one per seed), each with
        ``scores`` of ``corrupted``, ``isonet`` and ``cryogen``, ``training`` and
        ``time_to_quality``.

    Returns
    -------
    dict
        ``seeds``; ``per_seed`` (seed, each row's scores, steps, the paired differences,
        the time-to-quality fraction); ``median``, ``min``, ``max`` per row and metric;
        ``paired`` per metric: ``median`` and ``mean`` of CryoGEN - IsoNet-style, ``ahead``
        (seeds where CryoGEN is better, by the metric's direction), ``behind``, ``n``;
        ``time_to_quality``: the fractions (``None`` where not reached), ``reached``, and the
        median fraction counting "not reached" as longer than any (``None`` when at least
        half were not reached); ``stability`` per method: the largest and median
        :func:`~cryogen.benchmark.largest_drop` over the seeds (``drop`` per seed), and on
        how many of the ``n`` seeds with a measured drop it stayed within ``STABLE_DROP_DB``.
    """
    if not runs:
        raise ValueError("no runs to summarise")
    rows = ("corrupted", *METHODS)
    per_seed: list[dict[str, Any]] = []
    for res in runs:
        entry: dict[str, Any] = {"seed": int(res["settings"]["seed"])}
        for row in rows:
            sc = res["scores"][row]
            entry[row] = {k: sc.get(k) for k in TABLE_METRICS}
            if row in METHODS:
                entry[row]["steps"] = res["training"][row]["steps"]
                entry[row]["minutes"] = res["training"][row]["minutes"]
        entry["diff"] = {
            k: (
                entry["cryogen"][k] - entry["isonet"][k]
                if entry["cryogen"][k] is not None and entry["isonet"][k] is not None
                else None
            )
            for k in TABLE_METRICS
        }
        ttq = res.get("time_to_quality") or {}
        entry["ttq_fraction"] = ttq.get("fraction") if ttq.get("reached") else None
        # from the curves, so that folders written before the criterion was reported have it
        curves = res.get("curves") or {}
        entry["drop"] = {m: largest_drop(curves.get(m) or []) for m in METHODS}
        per_seed.append(entry)
    per_seed.sort(key=lambda e: e["seed"])
    out: dict[str, Any] = {"seeds": [e["seed"] for e in per_seed], "per_seed": per_seed}
    for stat, fn in (("median", statistics.median), ("min", min), ("max", max)):
        out[stat] = {}
        for row in rows:
            keys = [*TABLE_METRICS, "steps"] if row in METHODS else list(TABLE_METRICS)
            out[stat][row] = {}
            for k in keys:
                vals = [e[row].get(k) for e in per_seed]
                vals = [float(v) for v in vals if v is not None and math.isfinite(v)]
                out[stat][row][k] = float(fn(vals)) if vals else None
    paired: dict[str, Any] = {}
    for k, higher in HIGHER_IS_BETTER.items():
        d = [e["diff"][k] for e in per_seed if e["diff"][k] is not None]
        d = [v for v in d if math.isfinite(v)]
        ahead = sum(1 for v in d if (v > 0 if higher else v < 0))
        behind = sum(1 for v in d if (v < 0 if higher else v > 0))
        paired[k] = {
            "median": _median(d),
            "mean": float(sum(d) / len(d)) if d else None,
            "ahead": ahead,
            "behind": behind,
            "n": len(d),
        }
    out["paired"] = paired
    out["stability"] = {}
    for m in METHODS:
        drops = [e["drop"][m] for e in per_seed if e["drop"][m] is not None]
        out["stability"][m] = {
            "max_drop": max(drops) if drops else None,
            "median_drop": _median(drops),
            "stable": sum(1 for d in drops if d <= STABLE_DROP_DB),
            "n": len(drops),
        }
    fractions = [e["ttq_fraction"] for e in per_seed]
    ranked = sorted(math.inf if f is None else f for f in fractions)
    med = statistics.median(ranked) if ranked else math.inf
    out["time_to_quality"] = {
        "fractions": fractions,
        "reached": sum(1 for f in fractions if f is not None),
        "n": len(fractions),
        "median_fraction": float(med) if math.isfinite(med) else None,
    }
    return out


def _targets(case: str, summary: dict[str, Any], paper_protocol: bool) -> list[dict[str, Any]]:
    """Issue 6's targets on the medians over the seeds."""
    out: list[dict[str, Any]] = []
    med, paired = summary["median"], summary["paired"]
    for key in ("psnr", "ssim_global"):
        a, b, d = med["cryogen"].get(key), med["isonet"].get(key), paired[key]["median"]
        if a is not None and b is not None and d is not None:
            out.append(
                {
                    "target": f"CryoGEN >= IsoNet-style on {key} (medians over seeds)",
                    "met": bool(a >= b and d >= 0),
                    "value": f"medians {a:.4g} vs {b:.4g}; median paired difference {d:+.3g}, "
                    f"CryoGEN ahead on {paired[key]['ahead']} of {paired[key]['n']} seeds",
                }
            )
    cg = med["cryogen"].get("psnr")
    if paper_protocol and case in PSNR_TARGETS and cg is not None:
        t = PSNR_TARGETS[case]
        out.append(
            {
                "target": f"CryoGEN median PSNR >= {t:g} dB",
                "met": bool(cg >= t),
                "value": f"{cg:.2f} dB",
            }
        )
    st = summary.get("stability", {}).get("cryogen")
    if st and st["n"]:
        [entry] = stability_target(st["max_drop"], " on every seed")
        entry["value"] += f" (stable on {st['stable']} of {st['n']} seeds)"
        out.append(entry)
    return out


def _signed(key: str, v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    text = format_metric(key, abs(v))
    return ("+" if v >= 0 else "-") + text


def _drop_cell(drop: float | None) -> str:
    return "n/a" if drop is None else f"{drop:.2f} dB"


def _seed_cell(r: dict[str, Any]) -> str:
    text = f"{format_metric('psnr', r['psnr'])} / {format_metric('ssim_global', r['ssim_global'])}"
    return text + (f"; {r['steps']}" if "steps" in r else "")


def render_repeats_markdown(results: dict[str, Any]) -> str:
    """``results.md`` of a repeated benchmark: medians, ranges, paired differences, per seed."""
    s = results["settings"]
    summary = results.get("summary")
    lines = [f"# CryoGEN-ET benchmark: {s['case']}, repeated over seeds", ""]
    lines += case_lines(s, results.get("description"))
    budget = f"{s['minutes']:g} min" if s.get("steps") is None else f"{s['steps']} steps"
    seeds = results["seeds"]
    lines.append(
        f"- Training: {budget} per method, preset `{s['preset']}`, seeds "
        f"{', '.join(str(x) for x in seeds)}: each seed is one complete benchmark "
        "(`seed_<S>/`), both methods with the same seed and data, "
        + (
            "trained at the same time (one process per half of the CPUs)"
            if s.get("concurrent")
            else "one after the other"
        )
        + (f"; config overrides {s['overrides']}" if s.get("overrides") else "")
        + ("; predictions with `--tta`" if s.get("tta") else "")
    )
    lines.append(
        "- Scores after the least-squares scale fit, as a single benchmark; medians over the "
        "seeds, the range in brackets; paired difference = CryoGEN - IsoNet-style of the same "
        "seed."
    )
    done = len(summary["seeds"]) if summary else 0
    lines.append(f"- Seeds finished: {done} of {len(seeds)}.")
    lines.append("")
    if summary:
        keys = [k for k in TABLE_METRICS if k != "mse"]
        lines.append(
            "| median [min, max] | " + " | ".join(TABLE_METRICS[k][0] for k in keys) + " | steps |"
        )
        lines.append("|---" * (len(keys) + 2) + "|")
        for row in ("corrupted", *METHODS):
            cells = []
            for k in keys:
                m, lo, hi = (summary[st][row].get(k) for st in ("median", "min", "max"))
                cells.append(
                    f"{format_metric(k, m)} [{format_metric(k, lo)}, {format_metric(k, hi)}]"
                    if m is not None
                    else "n/a"
                )
            steps = summary["median"][row].get("steps") if row in METHODS else None
            lines.append(
                f"| {METHOD_LABELS[row]} | "
                + " | ".join(cells)
                + f" | {'' if steps is None else f'{steps:.0f}'} |"
            )
        p = summary["paired"]
        lines.append(
            "| CryoGEN - IsoNet-style, median | "
            + " | ".join(_signed(k, p[k]["median"]) for k in keys)
            + " | |"
        )
        lines.append(
            "| CryoGEN better on | "
            + " | ".join(f"{p[k]['ahead']} of {p[k]['n']}" for k in keys)
            + " | |"
        )
        lines += ["", "Per seed (PSNR dB / global SSIM; steps):", ""]
        lines.append(
            "| seed | corrupted | IsoNet-style | CryoGEN | CryoGEN - IsoNet-style | "
            "time to quality | largest drop (IsoNet-style / CryoGEN) |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for e in summary["per_seed"]:
            d = e["diff"]
            ttq = e["ttq_fraction"]
            lines.append(
                f"| {e['seed']} | {_seed_cell(e['corrupted'])} | {_seed_cell(e['isonet'])} | "
                f"{_seed_cell(e['cryogen'])} | "
                f"{_signed('psnr', d['psnr'])} dB / {_signed('ssim_global', d['ssim_global'])} | "
                f"{'not reached' if ttq is None else f'{ttq:.2f}'} | "
                + " / ".join(_drop_cell(e["drop"][m]) for m in METHODS)
                + " |"
            )
        t = summary["time_to_quality"]
        mf = t["median_fraction"]
        lines += [
            "",
            f"**Time to quality** (CryoGEN's time to the IsoNet-style final PSNR of the same "
            f"seed, as a fraction of the baseline's budget): reached on {t['reached']} of "
            f"{t['n']} seeds; median "
            + (f"{mf:.2f}" if mf is not None else "not reached (half or more of the seeds)")
            + ". (The paper claims about a tenth.)",
        ]
        st = summary.get("stability")
        if st and any(st[m]["n"] for m in METHODS):
            lines += [
                "",
                f"**Stability** ({STABILITY_CAPTION}): "
                + "; ".join(
                    f"{METHOD_LABELS[m]} at most {_drop_cell(st[m]['max_drop'])}, "
                    f"within {STABLE_DROP_DB:g} dB on {st[m]['stable']} of {st[m]['n']} seeds"
                    for m in METHODS
                    if st[m]["n"]
                )
                + ".",
            ]
    paper = PAPER_TABLE1.get(s["case"])
    if paper:
        lines += [
            "",
            "The paper's Table 1 for this case (PSNR dB / global SSIM): "
            + ", ".join(f"{PAPER_LABELS[k]} {a:.2f} / {b:.4f}" for k, (a, b) in paper.items())
            + ".",
        ]
    if results.get("command"):
        lines += ["", f"Command: `{results['command']}`"]
    checks = results.get("targets")
    if checks:
        lines += ["", "Targets of issues 3 and 6 on the medians (meant for 15 min per method):", ""]
        for c in checks:
            lines.append(f"- {c['target']}: {'met' if c['met'] else 'MISSED'} ({c['value']})")
    lines += ["", f"Status: {results.get('status', '')}."]
    return "\n".join(lines) + "\n"


def repeats_figure(results: dict[str, Any], out_png: str | os.PathLike) -> Path:
    """``repeats.png``: PSNR and global SSIM of both methods per seed (a line joins the two
    methods of one seed), with the medians as horizontal bars."""
    from cryogen.figures import agg_pyplot, save_figure

    plt = agg_pyplot()
    summary = results["summary"]
    colours = {"isonet": "tab:blue", "cryogen": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim_global", "global SSIM")):
        for e in summary["per_seed"]:
            ys = [e[m][key] for m in METHODS]
            if None in ys:
                continue
            ax.plot([0, 1], ys, "-", color="grey", lw=0.8, alpha=0.7)
            ax.annotate(f"seed {e['seed']}", (1.04, ys[1]), fontsize=7, va="center")
        for i, m in enumerate(METHODS):
            ys = [e[m][key] for e in summary["per_seed"] if e[m][key] is not None]
            ax.plot([i] * len(ys), ys, "o", color=colours[m], ms=6)
            med = summary["median"][m].get(key)
            if med is not None:
                ax.hlines(med, i - 0.15, i + 0.15, color=colours[m], lw=2.5)
        ax.set_xticks([0, 1], [METHOD_LABELS[m] for m in METHODS])
        ax.set_xlim(-0.4, 1.5)
        ax.set_ylabel(label)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3, axis="y")
    p = summary["paired"]["psnr"]
    s = results["settings"]
    fig.suptitle(
        f"{s['case']}: {len(summary['per_seed'])} seeds, bars = medians; CryoGEN - IsoNet-style "
        f"median {p['median']:+.2f} dB, ahead on {p['ahead']} of {p['n']}",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out_png)


def _prepare(out: Path, seeds: list[int], overwrite: bool, resume: bool) -> None:
    if not (overwrite or resume):
        held = [
            p for p in [out, *(_seed_dir(out, s) for s in seeds)] if (p / "results.json").exists()
        ]
        if held:
            raise OutputError(
                f"{held[0]}: already holds benchmark results; use --resume to keep the "
                "finished seeds, or --overwrite to run every seed again"
            )
    make_output_dir(out)


def run_benchmark_repeats(
    settings: BenchmarkSettings,
    out_dir: str | os.PathLike,
    repeats: int,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    say: Say | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run a benchmark case with seeds ``settings.seed ... settings.seed + repeats - 1``.

    Parameters
    ----------
    settings
        The case and options; ``settings.seed`` is the first seed.
    out_dir
        Output folder: ``seed_<S>/`` per seed (a single-run benchmark folder each), and the
        summary files (module docstring).
    repeats
        Number of seeds, >= 2.
    overwrite
        Run every seed again in a folder that holds results.
    resume
        Keep the seed folders that hold a complete run with the same settings; run the rest.
    progress, say, command
        As :func:`cryogen.benchmark.run_benchmark`.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    s = settings
    if repeats < 2:
        raise InputError(f"--repeats must be at least 2 for a repeated benchmark, got {repeats}")
    if overwrite and resume:
        raise InputError("--overwrite and --resume exclude each other")
    s.check()
    out = Path(out_dir)
    seeds = [s.seed + i for i in range(repeats)]
    s = _decide_concurrent(s, out, seeds, resume)
    # every seed's config first (a bad --set fails before anything is written)
    from cryogen.benchmark import _train_config

    for m in METHODS:
        _train_config(s, m)
    _prepare(out, seeds, overwrite, resume)
    t_start = time.perf_counter()

    def tell(msg: str) -> None:
        if say is not None:
            say(msg)

    common = {k: v for k, v in dataclasses.asdict(s).items() if k != "seed"}
    results: dict[str, Any] = {
        "format": REPEATS_FORMAT,
        "status": "running",
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "settings": common,
        "seeds": seeds,
        "runs": [],
        "description": None,
        "summary": None,
        "targets": [],
        "files": ["results.json", "results.md"],
    }
    finished: list[dict[str, Any]] = []

    def save() -> None:
        if finished:
            results["summary"] = summarise_repeats(finished)
            results["description"] = finished[0].get("description")
            results["targets"] = _targets(s.case, results["summary"], s.paper_protocol)
            repeats_figure(results, out / "repeats.png")
            if "repeats.png" not in results["files"]:
                results["files"].append("repeats.png")
        write_json(out / "results.json", results)
        write_text_atomic(out / "results.md", render_repeats_markdown(results))

    # with resume, every seed folder is checked before anything is written: a folder of
    # other settings stops the run with the earlier summary intact
    done = {
        seed: _completed_run(_seed_dir(out, seed), dataclasses.asdict(replace(s, seed=seed)))
        for seed in (seeds if resume else ())
    }
    save()
    for i, seed in enumerate(seeds):
        sub = _seed_dir(out, seed)
        seed_settings = replace(s, seed=seed)
        res = done.get(seed)
        if res is not None:
            tell(f"seed {seed} ({i + 1} of {repeats}): kept the finished run in {sub}")
            kept = True
        else:
            tell(f"seed {seed} ({i + 1} of {repeats}): running the benchmark in {sub}")
            res = run_benchmark(
                seed_settings,
                sub,
                overwrite=True,
                progress=progress,
                say=(lambda msg, _s=seed: tell(f"seed {_s}: {msg}")),
                command=f"{command}  # seed {seed} of {seeds}" if command else None,
            )
            kept = False
        finished.append(res)
        results["runs"].append({"seed": seed, "dir": sub.name, "kept": kept})
        save()
        p = results["summary"]["paired"]["psnr"]
        tell(
            f"after {i + 1} seed(s): CryoGEN - IsoNet-style PSNR median {p['median']:+.2f} dB, "
            f"CryoGEN ahead on {p['ahead']} of {p['n']}"
        )
    results["status"] = "complete"
    results["total_minutes"] = (time.perf_counter() - t_start) / 60.0
    save()
    return results
