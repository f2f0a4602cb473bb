"""What a benchmark writes for readers: ``results.md`` and the figures.

Metric labels, formats and directions come from :data:`cryogen.metrics.METRICS`; row labels
from :data:`cryogen.benchmark.METHOD_LABELS`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryogen.benchmark.cases import BenchmarkCase, paper_table1
from cryogen.benchmark.results import (
    BenchmarkResults,
    RepeatResults,
    RepeatSummary,
    Scores,
    Target,
    TimeToQuality,
)
from cryogen.benchmark.scoring import STABLE_AFTER_MINUTES, STABLE_DROP_DB
from cryogen.benchmark.settings import METHOD_LABELS, METHODS, ROWS, BenchmarkSettings

__all__ = [
    "PAPER_LABELS",
    "STABILITY_CAPTION",
    "case_lines",
    "format_metric",
    "format_signed",
    "method_figure",
    "psnr_time_figure",
    "render_markdown",
    "render_repeats_markdown",
    "repeats_figure",
    "ttq_text",
]

#: Row names of the paper's Table 1 (the paper's own methods, not ours).
PAPER_LABELS = {**METHOD_LABELS, "isonet": "IsoNet", "deepdewedge": "DeepDeWedge"}

#: What the reports' stability figure is (results.md of one run and of a repeat).
STABILITY_CAPTION = (
    f"largest PSNR drop of a checkpoint after the first {STABLE_AFTER_MINUTES:g} min below "
    f"the best one before it; the target is at most {STABLE_DROP_DB:g} dB"
)

_COLOURS = {"isonet": "tab:blue", "cryogen": "tab:red"}


# ------------------------------------------------------------------------------ text pieces
def format_metric(key: str, value: Any) -> str:
    """A metric value as the tables print it (``n/a`` for missing or non-finite)."""
    from cryogen.metrics import METRICS

    return METRICS[key].format(value)


#: The budget the targets were set for, whatever budget the run had.
TARGETS_BUDGET = "set for 15 minutes of training per method"
#: The heading of a run's targets.
TARGETS_CAPTION = f"Targets ({TARGETS_BUDGET}):"


def format_signed(key: str, value: float | None) -> str:
    """A difference of a metric with its sign (``+0.50``, ``-0.0012``; ``n/a``)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return ("+" if value >= 0 else "-") + format_metric(key, abs(value))


def _drop_text(drop: float | None) -> str:
    if drop is None:
        return f"n/a (no checkpoint after {STABLE_AFTER_MINUTES:g} min)"
    return f"{drop:.2f} dB"


def ttq_text(ttq: TimeToQuality | None) -> str:
    """Time to quality in one sentence."""
    if not ttq:
        return "not measured"
    if not ttq.reached or ttq.minutes is None or ttq.minutes_checkpoint is None:
        return (
            f"not reached: CryoGEN stayed below the IsoNet-style final PSNR "
            f"{ttq.baseline_psnr:.2f} dB within its budget"
        )
    text = (
        f"CryoGEN reached the IsoNet-style final PSNR {ttq.baseline_psnr:.2f} dB after "
        f"{ttq.minutes:.2f} min"
    )
    if ttq.fraction is not None:
        text += f" = {ttq.fraction:.2f} of the baseline's {ttq.baseline_minutes:.2f} min"
    return text + (
        f" (linear interpolation between checkpoints; first checkpoint at or above it: "
        f"{ttq.minutes_checkpoint:.2f} min)"
    )


def case_lines(s: BenchmarkSettings, description: str | None) -> list[str]:
    """The ``- Case:`` and ``- Corruption:`` lines of a results.md."""
    wedge = (
        f"Fourier mask T_M of [{s.tilt_min:g}, {s.tilt_max:g}] deg"
        if s.wedge == "fourier"
        else f"simulated tilt series [{s.tilt_min:g}, {s.tilt_max:g}] deg, step "
        f"{s.tilt_step:g} deg, weighted back-projection"
    )
    noise = [f"SNR {s.snr:g}"] if s.snr else []
    if s.dose is not None:
        noise.append(f"dose {s.dose:g} e/Å² (shot noise)")
    if s.defocus is not None:
        wedge += f", CTF at {s.defocus:g} µm defocus"
    if s.halves:
        noise.append(
            "as two half-sets with independent noise (each with twice the noise variance of "
            "their mean); both methods train on the half-sets (input from one, target the "
            "other) and predict their mean, the corrupted row"
        )
    return [
        f"- Case: {description or ''}.",
        f"- Corruption: {wedge}; noise: " + (", ".join(noise) if noise else "none"),
    ]


def _budget(s: BenchmarkSettings) -> str:
    return f"{s.minutes:g} min" if s.steps is None else f"{s.steps} steps"


def _how_trained(s: BenchmarkSettings, sequential: str) -> str:
    if not s.compared:
        how = f"{METHOD_LABELS[s.methods[0]]} only"
    elif s.concurrent:
        how = "trained at the same time (one process per half of the CPUs)"
    else:
        how = sequential
    return how + (f"; config overrides {s.overrides}" if s.overrides else "")


def _paper_lines(case: str) -> list[str]:
    paper = paper_table1(case)
    if not paper:
        return []
    return [
        "",
        "The paper's Table 1 for this case (PSNR dB / global SSIM, its budget):",
        "",
        "| | " + " | ".join(PAPER_LABELS.get(k, k) for k in paper) + " |",
        "|---" * (len(paper) + 1) + "|",
        "| paper | " + " | ".join(f"{p:.2f} / {q:.4f}" for p, q in paper.values()) + " |",
    ]


def _target_lines(targets: list[Target] | None, heading: str) -> list[str]:
    if not targets:
        return []
    lines = ["", heading, ""]
    for t in targets:
        lines.append(f"- {t.target}: {'met' if t.met else 'MISSED'} ({t.value})")
    return lines


# ------------------------------------------------------------------------------ one run
def _blur_lines(results: BenchmarkResults) -> list[str]:
    """The note under the table on the best Gaussian blur's width, where there is one."""
    blur = results.scores.get("blur")
    if blur is None or blur.get("blur_sigma") is None:
        return []
    return [
        "",
        f"Best Gaussian blur: the input filtered with a Gaussian of {blur.get('blur_sigma'):g} "
        "voxels, the width of the highest PSNR against the truth (an advantage no method "
        "has): a method below it has learned nothing a filter could not do.",
    ]


def _half_blur_lines(results: BenchmarkResults) -> list[str]:
    """The settings line on the blur the half-sets chose for each method, where one was."""
    parts = []
    for m in METHODS:
        sc = results.scores.get(m)
        if sc is None or sc.get("half_blur_sigma") is None:
            continue
        raw = sc.get("psnr_unblurred")
        unblurred = f", {raw:.2f} dB unblurred" if raw is not None else ""
        parts.append(f"{METHOD_LABELS[m]} sigma {sc.get('half_blur_sigma'):g}{unblurred}")
    if not parts:
        return []
    return [
        "- Final predictions blurred by the Gaussian width each method's half-sets choose "
        "(`cryogen predict --blur auto`, no truth used; the PSNR-time curve is unblurred): "
        + "; ".join(parts)
        + "."
    ]


def _score_table(results: BenchmarkResults) -> list[str]:
    from cryogen.metrics import METRICS

    lines = [
        "| | " + " | ".join(m.label for m in METRICS.values()) + " | steps | minutes |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    for row in ROWS:
        sc = results.scores.get(row)
        if sc is None:
            continue
        tr = results.training.get(row)
        steps = str(tr.steps) if tr else ""
        mins = f"{tr.minutes:.2f}" if tr and tr.minutes is not None else ""
        cells = [m.format(sc.get(k)) for k, m in METRICS.items()]
        lines.append(f"| {METHOD_LABELS[row]} | " + " | ".join(cells) + f" | {steps} | {mins} |")
    return lines


def render_markdown(results: BenchmarkResults) -> str:
    """The benchmark's ``results.md``: settings, the table, time to quality, targets."""
    s = results.settings
    lines = [f"# CryoGEN-ET benchmark: {s.case}", "", *case_lines(s, results.description)]
    lines.append(
        f"- Training: {_budget(s)} per method, same seed ({s.seed}) and data, preset "
        f"`{s.preset}`, device {results.device_used or s.device}, "
        + _how_trained(s, "run one after the other")
    )
    lines.append(
        "- Scores: every volume's prediction is fitted to the truth by least squares "
        "(a * pred + b) before scoring (scale fit ON for every row, the corrupted input "
        f"included); mean over {results.n_volumes} volume(s). Resolutions: FSC = 0.5 "
        "against the truth, in cones of 30 deg around kz (res_z) and kx (res_x)."
    )
    if s.tta:
        lines.append(
            "- Predictions of both methods averaged over the rotations that keep the wedge "
            "(`--tta`)."
        )
    lines += _half_blur_lines(results)
    lines += ["", *_score_table(results), *_blur_lines(results), *_paper_lines(s.case)]
    if s.compared:
        lines += [
            "",
            f"**Time to quality**: {ttq_text(results.time_to_quality)}. "
            "(The paper claims CryoGEN needs about a tenth of IsoNet's training time.)",
        ]
    drops = results.stability
    if drops:
        lines += [
            "",
            f"**Stability** ({STABILITY_CAPTION}): "
            + ", ".join(
                f"{METHOD_LABELS[m]} {_drop_text(drops.get(m))}" for m in METHODS if m in drops
            )
            + ".",
        ]
    if results.command:
        lines += ["", f"Command: `{results.command}`"]
    lines += _target_lines(results.targets, TARGETS_CAPTION)
    lines += ["", f"Status: {results.status}."]
    if results.files:
        lines += ["", "Files: " + ", ".join(f"`{f}`" for f in results.files) + "."]
    return "\n".join(lines) + "\n"


def psnr_time_figure(results: BenchmarkResults, out_png: str | os.PathLike[str]) -> Path:
    """PSNR and global SSIM against training minutes for both methods (``psnr_vs_time.png``).

    The corrupted input is a dashed line; the baseline's final PSNR a dotted one; CryoGEN's
    time to quality a vertical line.
    """
    from cryogen.figures import agg_pyplot, save_figure

    plt = agg_pyplot()
    corrupted = results.scores.get("corrupted")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], "psnr", "PSNR (dB)"),
        (axes[1], "ssim_global", "global SSIM"),
    ):
        for m in METHODS:
            pts = [(c.minutes, getattr(c, key)) for c in results.curves.get(m, [])]
            pts = [(t, v) for t, v in pts if v is not None]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True), "o-", ms=3, color=_COLOURS[m], label=METHOD_LABELS[m]
                )
        if corrupted is not None and corrupted.get(key) is not None:
            ax.axhline(corrupted.get(key), color="grey", ls="--", lw=1, label="corrupted")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("training time (min)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ttq = results.time_to_quality
    if ttq:
        axes[0].axhline(ttq.baseline_psnr, color="tab:blue", ls=":", lw=1)
        if ttq.reached and ttq.minutes is not None:
            axes[0].axvline(ttq.minutes, color="tab:red", ls=":", lw=1)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"{results.settings.case}: scale-fitted scores of the checkpoints; time to quality: "
        + (
            f"{ttq.fraction:.2f} of the baseline's budget"
            if ttq and ttq.reached and ttq.fraction is not None
            else ("not reached" if ttq else "n/a")
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out_png)


def method_figure(
    out_png: Path, case: BenchmarkCase, pred: np.ndarray, method: str, score: Scores
) -> None:
    """Truth, corrupted input and a method's prediction of the first volume (all scale-fitted
    to the truth): ortho slices and central Fourier slices."""
    from cryogen.figures import ortho_and_fourier_figure
    from cryogen.metrics import apply_scale_fit

    truth = case.truth[0].numpy()
    corrupted = apply_scale_fit(case.corrupted[0], truth).astype(np.float32)
    fitted = apply_scale_fit(pred, truth).astype(np.float32)
    ortho_and_fourier_figure(
        [truth, corrupted, fitted],
        ["truth", "corrupted", METHOD_LABELS[method]],
        out_png,
        voxel_size=case.voxel_size,
        suptitle=(
            f"{case.name}, volume 1 of {len(case.truth)}: {METHOD_LABELS[method]} "
            f"PSNR {score.get('psnr'):.2f} dB, SSIM {score.get('ssim_global'):.4f} (scale-fitted)"
        ),
    )


# ------------------------------------------------------------------------------ a repeat
def _drop_cell(drop: float | None) -> str:
    return "n/a" if drop is None else f"{drop:.2f} dB"


def _seed_cell(r: dict[str, Any]) -> str:
    text = f"{format_metric('psnr', r['psnr'])} / {format_metric('ssim_global', r['ssim_global'])}"
    return text + (f"; {r['steps']}" if "steps" in r else "")


def _median_table(summary: RepeatSummary, compared: bool) -> list[str]:
    from cryogen.metrics import METRICS

    keys = [k for k in METRICS if k != "mse"]
    lines = [
        "| median [min, max] | " + " | ".join(METRICS[k].label for k in keys) + " | steps |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for row in (r for r in ROWS if r in summary.median):
        cells = []
        for k in keys:
            m, lo, hi = (
                st[row].get(k) for st in (summary.median, summary.minimum, summary.maximum)
            )
            cells.append(
                f"{format_metric(k, m)} [{format_metric(k, lo)}, {format_metric(k, hi)}]"
                if m is not None
                else "n/a"
            )
        steps = summary.median[row].get("steps") if row in METHODS else None
        lines.append(
            f"| {METHOD_LABELS[row]} | "
            + " | ".join(cells)
            + f" | {'' if steps is None else f'{steps:.0f}'} |"
        )
    p = summary.paired
    if not compared:
        return lines
    lines.append(
        "| CryoGEN - IsoNet-style, median | "
        + " | ".join(format_signed(k, p[k].median) for k in keys)
        + " | |"
    )
    lines.append(
        "| CryoGEN better on | " + " | ".join(f"{p[k].ahead} of {p[k].n}" for k in keys) + " | |"
    )
    return lines


def _per_seed_table(summary: RepeatSummary, both: bool) -> list[str]:
    rows = [r for r in ROWS if r in summary.median]
    methods = [m for m in METHODS if m in rows]
    compared = " | CryoGEN - IsoNet-style | time to quality" if both else ""
    drops = " / ".join(METHOD_LABELS[m] for m in methods)
    lines = [
        "",
        "Per seed (PSNR dB / global SSIM; steps):",
        "",
        "| seed | "
        + " | ".join(METHOD_LABELS[r] for r in rows)
        + f"{compared} | largest drop ({drops}) |",
        "|---" * (len(rows) + (4 if both else 2)) + "|",
    ]
    for e in summary.per_seed:
        d, ttq = e.diff, e.ttq_fraction
        cells = [_seed_cell(e.rows[r]) for r in rows]
        if both:
            cells.append(
                f"{format_signed('psnr', d['psnr'])} dB / "
                f"{format_signed('ssim_global', d['ssim_global'])}"
            )
            cells.append("not reached" if ttq is None else f"{ttq:.2f}")
        cells.append(" / ".join(_drop_cell(e.drop.get(m)) for m in methods))
        lines.append(f"| {e.seed} | " + " | ".join(cells) + " |")
    return lines


def _repeat_conclusions(summary: RepeatSummary, compared: bool) -> list[str]:
    t = summary.time_to_quality
    mf = t.median_fraction
    lines: list[str] = []
    if compared:
        lines += [
            "",
            f"**Time to quality** (CryoGEN's time to the IsoNet-style final PSNR of the same "
            f"seed, as a fraction of the baseline's budget): reached on {t.reached} of "
            f"{t.n} seeds; median "
            + (f"{mf:.2f}" if mf is not None else "not reached (half or more of the seeds)")
            + ". (The paper claims about a tenth.)",
        ]
    st = summary.stability
    if st and any(st[m].n for m in METHODS if m in st):
        lines += [
            "",
            f"**Stability** ({STABILITY_CAPTION}): "
            + "; ".join(
                f"{METHOD_LABELS[m]} at most {_drop_cell(st[m].max_drop)}, "
                f"within {STABLE_DROP_DB:g} dB on {st[m].stable} of {st[m].n} seeds"
                for m in METHODS
                if m in st and st[m].n
            )
            + ".",
        ]
    return lines


def render_repeats_markdown(results: RepeatResults) -> str:
    """``results.md`` of a repeated benchmark: medians, ranges, paired differences, per seed."""
    s, summary = results.settings, results.summary
    lines = [f"# CryoGEN-ET benchmark: {s.case}, repeated over seeds", ""]
    lines += case_lines(s, results.description)
    lines.append(
        f"- Training: {_budget(s)} per method, preset `{s.preset}`, seeds "
        f"{', '.join(str(x) for x in results.seeds)}: each seed is one complete benchmark "
        "(`seed_<S>/`), "
        + ("both methods with the same seed and data, " if s.compared else "")
        + _how_trained(s, "one after the other")
        + ("; predictions with `--tta`" if s.tta else "")
    )
    lines.append(
        "- Scores after the least-squares scale fit, as a single benchmark; medians over the "
        "seeds, the range in brackets"
        + ("; paired difference = CryoGEN - IsoNet-style of the same seed." if s.compared else ".")
    )
    done = len(summary.seeds) if summary else 0
    lines += [f"- Seeds finished: {done} of {len(results.seeds)}.", ""]
    if summary:
        lines += [*_median_table(summary, s.compared), *_per_seed_table(summary, s.compared)]
        lines += _repeat_conclusions(summary, s.compared)
    paper = paper_table1(s.case)
    if paper:
        lines += [
            "",
            "The paper's Table 1 for this case (PSNR dB / global SSIM): "
            + ", ".join(f"{PAPER_LABELS[k]} {a:.2f} / {b:.4f}" for k, (a, b) in paper.items())
            + ".",
        ]
    if results.command:
        lines += ["", f"Command: `{results.command}`"]
    lines += _target_lines(results.targets, f"Targets on the medians ({TARGETS_BUDGET}):")
    lines += ["", f"Status: {results.status}."]
    return "\n".join(lines) + "\n"


def repeats_figure(results: RepeatResults, out_png: str | os.PathLike[str]) -> Path:
    """``repeats.png``: PSNR and global SSIM of both methods per seed (a line joins the two
    methods of one seed), with the medians as horizontal bars."""
    from cryogen.figures import agg_pyplot, save_figure

    plt = agg_pyplot()
    summary = results.summary
    if summary is None:
        raise ValueError("no finished seed to draw")
    methods = [m for m in METHODS if m in summary.median]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim_global", "global SSIM")):
        for e in summary.per_seed:
            ys = [e.rows[m][key] for m in methods]
            if None in ys:
                continue
            if len(ys) > 1:
                ax.plot([0, 1], ys, "-", color="grey", lw=0.8, alpha=0.7)
            ax.annotate(f"seed {e.seed}", (len(ys) - 0.96, ys[-1]), fontsize=7, va="center")
        for i, m in enumerate(methods):
            ys = [e.rows[m][key] for e in summary.per_seed if e.rows[m][key] is not None]
            ax.plot([i] * len(ys), ys, "o", color=_COLOURS[m], ms=6)
            med = summary.median[m].get(key)
            if med is not None:
                ax.hlines(med, i - 0.15, i + 0.15, color=_COLOURS[m], lw=2.5)
        ax.set_xticks(range(len(methods)), [METHOD_LABELS[m] for m in methods])
        ax.set_xlim(-0.4, len(methods) - 0.5)
        ax.set_ylabel(label)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3, axis="y")
    p = summary.paired["psnr"]
    title = f"{results.settings.case}: {len(summary.per_seed)} seeds, bars = medians"
    if results.settings.compared:
        title += f"; CryoGEN - IsoNet-style median {p.median:+.2f} dB, ahead on {p.ahead} of {p.n}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)
