"""A benchmark repeated over seeds, summarised by medians (``cryogen benchmark --repeats N``).

One benchmark run (:func:`cryogen.benchmark.run_benchmark`) is one draw: on these phantoms
two runs of the same algorithm with other random draws differ by up to ~1 dB, as much as the
two methods differ.  A repeated benchmark runs the case with seeds ``seed, seed + 1, ...``
(each seed changes the phantoms' random parts, the subtomogram origins and every training
draw, for both methods alike), then reports per metric the median and range of each method
and the *paired* differences CryoGEN - IsoNet-style (same seed, same data): their median
and how many seeds CryoGEN is ahead on.  Time to quality is summarised the same way, and
the stability target (:func:`cryogen.benchmark.largest_drop`) per seed and over them.

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

import datetime as dt
import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryogen.benchmark.cases import CASES
from cryogen.benchmark.job import Say, teller
from cryogen.benchmark.report import render_repeats_markdown, repeats_figure
from cryogen.benchmark.results import (
    RESULTS_FILE,
    BenchmarkResults,
    PairedStat,
    RepeatResults,
    RepeatSummary,
    SeedRun,
    SeedSummary,
    StabilityStat,
    Target,
    TtqSummary,
    make_output_dir,
    read_results,
    refuse_held,
)
from cryogen.benchmark.run import run_benchmark
from cryogen.benchmark.scoring import (
    COMPARED_METRICS,
    STABLE_DROP_DB,
    largest_drop,
    stability_target,
)
from cryogen.benchmark.settings import METHODS, ROWS, BenchmarkSettings, train_config
from cryogen.errors import InputError, OutputError
from cryogen.io import write_json, write_text_atomic

__all__ = ["repeat_targets", "run_benchmark_repeats", "seed_dir", "summarise_repeats"]

#: Settings that may differ between the seeds of one repeat (or are recorded, not chosen).
_PER_SEED = ("seed",)


def seed_dir(out: Path, seed: int) -> Path:
    """The folder of one seed's run in a repeat's folder."""
    return out / f"seed_{seed}"


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(vals)) if vals else None


# ------------------------------------------------------------------------------ summary
def _seed_summary(res: BenchmarkResults) -> SeedSummary:
    from cryogen.metrics import METRICS

    rows: dict[str, dict[str, Any]] = {}
    for row in (r for r in ROWS if r in res.scores):
        rows[row] = {k: res.scores[row].get(k) for k in METRICS}
        if row in METHODS:
            rows[row]["steps"] = res.training[row].steps
            rows[row]["minutes"] = res.training[row].minutes
    cg, iso = rows.get("cryogen", {}), rows.get("isonet", {})
    diff = {
        k: cg[k] - iso[k] if cg.get(k) is not None and iso.get(k) is not None else None
        for k in METRICS
    }
    ttq = res.time_to_quality
    fraction = ttq.fraction if ttq and ttq.reached else None
    # from the curves, so that folders written before the stability was reported have it
    drop = {m: largest_drop(res.curves.get(m) or []) for m in METHODS if m in rows}
    return SeedSummary(res.settings.seed, rows, diff, fraction, drop)


def _spread(per_seed: list[SeedSummary], fn: Callable[[list[float]], float]) -> dict[str, Any]:
    """``fn`` (median, min or max) of every row's metrics (and the methods' steps)."""
    from cryogen.metrics import METRICS

    out: dict[str, dict[str, float | None]] = {}
    for row in (r for r in ROWS if all(r in e.rows for e in per_seed)):
        keys = [*METRICS, "steps"] if row in METHODS else list(METRICS)
        out[row] = {}
        for k in keys:
            vals = [e.rows[row].get(k) for e in per_seed]
            finite = [float(v) for v in vals if v is not None and math.isfinite(v)]
            out[row][k] = float(fn(finite)) if finite else None
    return out


def _paired(per_seed: list[SeedSummary]) -> dict[str, PairedStat]:
    from cryogen.metrics import METRICS

    paired: dict[str, PairedStat] = {}
    for k, metric in METRICS.items():
        d = [v for v in (e.diff[k] for e in per_seed) if v is not None and math.isfinite(v)]
        sign = 1.0 if metric.higher_is_better else -1.0
        paired[k] = PairedStat(
            _median(d),
            float(sum(d) / len(d)) if d else None,
            sum(1 for v in d if sign * v > 0),
            sum(1 for v in d if sign * v < 0),
            len(d),
        )
    return paired


def summarise_repeats(runs: Sequence[BenchmarkResults]) -> RepeatSummary:
    """Medians, ranges and paired differences over the seeds of a repeated benchmark.

    Parameters
    ----------
    runs
        Complete single runs (one per seed), each with scores of every row, training and
        time to quality.

    Returns
    -------
    RepeatSummary
        Per seed: each row's scores and steps, the paired differences, the time-to-quality
        fraction and the largest drops; per row and metric: median, min, max; per metric:
        the paired differences CryoGEN - IsoNet-style (by the metric's direction in
        :data:`cryogen.metrics.METRICS`); per method: the largest and median drop and on how
        many seeds it met the stability target; time to quality: the fractions, how many
        reached it, and the median counting "not reached" as longer than any.
    """
    if not runs:
        raise ValueError("no runs to summarise")
    per_seed = sorted((_seed_summary(r) for r in runs), key=lambda e: e.seed)
    stability = {}
    for m in (m for m in METHODS if all(m in e.drop for e in per_seed)):
        drops = [d for d in (e.drop[m] for e in per_seed) if d is not None]
        stability[m] = StabilityStat(
            max(drops) if drops else None,
            _median(drops),
            sum(1 for d in drops if d <= STABLE_DROP_DB),
            len(drops),
        )
    fractions = [e.ttq_fraction for e in per_seed]
    ranked = sorted(math.inf if f is None else f for f in fractions)
    med = statistics.median(ranked) if ranked else math.inf
    ttq = TtqSummary(
        fractions,
        sum(1 for f in fractions if f is not None),
        len(fractions),
        float(med) if math.isfinite(med) else None,
    )
    return RepeatSummary(
        [e.seed for e in per_seed],
        per_seed,
        _spread(per_seed, statistics.median),
        _spread(per_seed, min),
        _spread(per_seed, max),
        _paired(per_seed),
        stability,
        ttq,
    )


def repeat_targets(case: str, summary: RepeatSummary, paper_protocol: bool) -> list[Target]:
    """The targets of a repeat, on the medians over the seeds: CryoGEN at least as good as the
    baseline (median scores and median paired difference), the case's PSNR target under the
    paper's protocol, and CryoGEN stable on every seed."""
    out: list[Target] = []
    med, paired = summary.median, summary.paired
    cg, iso = med.get("cryogen", {}), med.get("isonet", {})
    for key in COMPARED_METRICS:
        a, b, d = cg.get(key), iso.get(key), paired[key].median
        if a is not None and b is not None and d is not None:
            out.append(
                Target(
                    f"CryoGEN >= IsoNet-style on {key} (medians over seeds)",
                    bool(a >= b and d >= 0),
                    f"medians {a:.4g} vs {b:.4g}; median paired difference {d:+.3g}, "
                    f"CryoGEN ahead on {paired[key].ahead} of {paired[key].n} seeds",
                )
            )
    psnr = cg.get("psnr")
    target = CASES[case].psnr_target if case in CASES else None
    if paper_protocol and target is not None and psnr is not None:
        out.append(
            Target(f"CryoGEN median PSNR >= {target:g} dB", bool(psnr >= target), f"{psnr:.2f} dB")
        )
    st = summary.stability.get("cryogen")
    if st and st.n:
        [entry] = stability_target(st.max_drop, " on every seed")
        entry.value += f" (stable on {st.stable} of {st.n} seeds)"
        out.append(entry)
    return out


# ------------------------------------------------------------------------------ seeds
def _comparable(settings: BenchmarkSettings) -> dict[str, Any]:
    """The settings two seeds of one repeat must share, as JSON would write them."""
    import json

    data = {k: v for k, v in settings.to_json().items() if k not in _PER_SEED}
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def _finished_run(path: Path) -> BenchmarkResults | None:
    """The results of a finished single run in ``path``, else None (none, unreadable or
    unfinished)."""
    data = read_results(path)
    if data is None or data.get("status") != "complete":
        return None
    return BenchmarkResults.from_json(data)


def _completed_run(path: Path, settings: BenchmarkSettings) -> BenchmarkResults | None:
    """The results of a finished single run in ``path`` if its settings match, else None.

    Raises ``OutputError`` when the folder holds a complete run of *other* settings (resuming
    would mix two benchmarks)."""
    res = _finished_run(path)
    if res is None:
        return None
    theirs, ours = _comparable(res.settings), _comparable(settings)
    if theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise OutputError(
            f"{path}: holds a finished benchmark with other settings ({', '.join(diff)}); "
            "use another output folder",
            advice="overwrite",
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
            res = _finished_run(seed_dir(out, seed))
            if res is not None:
                return replace(s, concurrent=bool(res.settings.concurrent)).resolved()
    return s.resolved()


# ------------------------------------------------------------------------------ running
class _Repeat:
    """The state of one :func:`run_benchmark_repeats`: its results, rewritten after every
    seed."""

    def __init__(self, out: Path, results: RepeatResults, tell: Say) -> None:
        self.out, self.results, self.tell = out, results, tell
        self.finished: list[BenchmarkResults] = []

    def save(self) -> None:
        res = self.results
        if self.finished:
            res.summary = summarise_repeats(self.finished)
            res.description = self.finished[0].description
            res.targets = repeat_targets(
                res.settings.case, res.summary, res.settings.paper_protocol
            )
            repeats_figure(res, self.out / "repeats.png")
            if "repeats.png" not in res.files:
                res.files.append("repeats.png")
        write_json(self.out / RESULTS_FILE, res.to_json())
        write_text_atomic(self.out / "results.md", render_repeats_markdown(res))

    def _tell_seed(self, seed: int, msg: str) -> None:
        self.tell(f"seed {seed}: {msg}")

    def run_seed(self, i: int, seed: int, kept: BenchmarkResults | None, progress: bool) -> None:
        """Run one seed (or keep its finished run) and save the summary."""
        res, n = self.results, len(self.results.seeds)
        sub = seed_dir(self.out, seed)
        if kept is not None:
            self.tell(f"seed {seed} ({i + 1} of {n}): kept the finished run in {sub}")
            run = kept
        else:
            self.tell(f"seed {seed} ({i + 1} of {n}): running the benchmark in {sub}")
            command = res.command
            run = run_benchmark(
                replace(res.settings, seed=seed),
                sub,
                overwrite=True,
                progress=progress,
                say=functools.partial(self._tell_seed, seed),
                command=f"{command}  # seed {seed} of {res.seeds}" if command else None,
            )
        self.finished.append(run)
        res.runs.append(SeedRun(seed, sub.name, kept is not None))
        self.save()
        assert res.summary is not None
        p = res.summary.paired["psnr"]
        if res.settings.compared:
            self.tell(
                f"after {i + 1} seed(s): CryoGEN - IsoNet-style PSNR median {p.median:+.2f} dB, "
                f"CryoGEN ahead on {p.ahead} of {p.n}"
            )


def run_benchmark_repeats(
    settings: BenchmarkSettings,
    out_dir: str | os.PathLike[str],
    repeats: int,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    say: Say | None = None,
    command: str | None = None,
) -> RepeatResults:
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
    RepeatResults
        The content of ``results.json``.
    """
    if repeats < 2:
        raise InputError(f"repeats must be at least 2 for a repeated benchmark, got {repeats}")
    if overwrite and resume:
        raise InputError("overwrite and resume exclude each other")
    settings.check()
    out = Path(out_dir)
    seeds = [settings.seed + i for i in range(repeats)]
    s = _decide_concurrent(settings, out, seeds, resume)
    for m in s.methods:  # every config first: a bad override fails before anything is written
        train_config(s, m)
    if not (overwrite or resume):
        refuse_held([out, *(seed_dir(out, seed) for seed in seeds)], "benchmark results", "resume")
    make_output_dir(out)
    t_start = time.perf_counter()
    results = RepeatResults(
        settings=s,
        seeds=seeds,
        started=dt.datetime.now().isoformat(timespec="seconds"),
        command=command,
        files=[RESULTS_FILE, "results.md"],
    )
    repeat = _Repeat(out, results, teller(say, log=False))
    # with resume, every seed folder is checked before anything is written: a folder of
    # other settings stops the run with the earlier summary intact
    done = (
        {seed: _completed_run(seed_dir(out, seed), replace(s, seed=seed)) for seed in seeds}
        if resume
        else {}
    )
    repeat.save()
    for i, seed in enumerate(seeds):
        repeat.run_seed(i, seed, done.get(seed), progress)
    results.status = "complete"
    results.total_minutes = (time.perf_counter() - t_start) / 60.0
    repeat.save()
    return results
