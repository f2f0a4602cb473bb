"""One benchmark run: build the case, train each method, score its checkpoints, write the folder.

Output folder of :func:`run_benchmark`::

    DIR/results.json          settings, scores, curves, time to quality (rewritten atomically
                              after every stage, so a crash loses nothing finished)
    DIR/results.md            the table
    DIR/figure_isonet.png     truth / corrupted / prediction: ortho and central Fourier slices
    DIR/figure_cryogen.png
    DIR/psnr_vs_time.png      PSNR and global SSIM against training minutes, both methods
    DIR/volumes/*.mrc         truth, corrupted and both predictions of the first volume
    DIR/runs/{isonet,cryogen}/  the training runs (config, losses, checkpoints)

Both methods train with the same budget, seed and data, one after the other or (``concurrent``)
at the same time on two halves of the CPUs (:mod:`cryogen.benchmark.concurrent`).  With one
method in ``settings.methods``, only its rows are measured: no comparison, no time to quality.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cryogen.benchmark.cases import REFERENCES, BenchmarkCase, paper_table1
from cryogen.benchmark.concurrent import run_methods_concurrently
from cryogen.benchmark.job import MethodJob, MethodOutcome, Say, teller
from cryogen.benchmark.report import method_figure, psnr_time_figure, render_markdown, ttq_text
from cryogen.benchmark.results import (
    RESULTS_FILE,
    BenchmarkResults,
    CurvePoint,
    make_output_dir,
    refuse_held,
    save_volume,
)
from cryogen.benchmark.scoring import largest_drop, run_targets, score_volumes, time_to_quality
from cryogen.benchmark.settings import METHOD_LABELS, METHODS, BenchmarkSettings, train_config
from cryogen.errors import OutputError
from cryogen.io import write_json, write_text_atomic

__all__ = ["run_benchmark"]

logger = logging.getLogger(__name__)

UNTRAINED_NOTE = "untrained generator = identity (zero-initialised residual head) = the input"


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
    }


@dataclass
class _Run:
    """The state of one :func:`run_benchmark`: its results, rewritten after every stage."""

    out: Path
    case: BenchmarkCase
    configs: dict[str, Any]
    results: BenchmarkResults
    tell: Say

    def save(self) -> None:
        write_json(self.out / RESULTS_FILE, self.results.to_json())
        write_text_atomic(self.out / "results.md", render_markdown(self.results))

    def score_references(self) -> CurvePoint:
        """Score the reference rows, write their volumes; the curves' first point."""
        case, s, res = self.case, self.results.settings, self.results
        self.tell(
            f"{case.description}; {len(case.truth)} volume(s) of {tuple(case.truth[0].shape)}"
        )
        save_volume(self.out / "volumes" / "truth.mrc", case.truth[0], case.voxel_size)
        res.files.append("volumes/truth.mrc")
        for name, ref in REFERENCES.items():
            if not ref.applies(case):
                continue
            self.tell(f"scoring the {ref.label} input")
            volumes, extra = ref.make(case)
            res.scores[name] = score_volumes(
                volumes,
                case.truth,
                tilt_min=s.tilt_min,
                tilt_max=s.tilt_max,
                voxel_size=case.voxel_size,
            )
            res.scores[name].metrics.update(extra)
            if extra:
                self.tell("  " + ", ".join(f"{k} {v:g}" for k, v in extra.items()))
            save_volume(self.out / "volumes" / f"{name}.mrc", volumes[0], case.voxel_size)
            res.files.append(f"volumes/{name}.mrc")
        corrupted = res.scores["corrupted"]
        self.save()
        return CurvePoint(
            0.0, corrupted.get("psnr"), corrupted.get("ssim_global"), 0, UNTRAINED_NOTE
        )

    def on_stage(self, method: str, kind: str, value: Any) -> None:
        from cryogen.device import pick_device

        if kind == "training":
            self.results.training[method] = value
            self.results.device_used = str(pick_device(self.configs[method].device))
        else:
            self.results.curves[method] = value
        self.save()

    def finish(self, method: str, outcome: MethodOutcome | None) -> None:
        if outcome is None:
            raise OutputError(
                f"training of {method} was interrupted; partial results are in {self.out}"
            )
        res, score = self.results, outcome.score
        res.scores[method] = score
        save_volume(
            self.out / "volumes" / f"{method}.mrc", outcome.first_pred, self.case.voxel_size
        )
        fig = f"figure_{method}.png"
        method_figure(self.out / fig, self.case, outcome.first_pred, method, score)
        res.files.extend([f"volumes/{method}.mrc", fig])
        self.save()
        c = res.scores["corrupted"]
        self.tell(
            f"{METHOD_LABELS[method]}: PSNR {score.get('psnr'):.2f} dB, SSIM "
            f"{score.get('ssim_global'):.4f} (corrupted {c.get('psnr'):.2f}"
            f" / {c.get('ssim_global'):.4f})"
        )

    def train_methods(self, start: CurvePoint, progress: bool) -> None:
        s, case = self.results.settings, self.case
        truth = [t.numpy() for t in case.truth]
        halves = None
        if case.halves is not None:
            halves = [(a.numpy(), b.numpy()) for a, b in case.halves]
        job = MethodJob(
            s,
            [c.numpy() for c in case.corrupted],
            truth,
            case.voxel_size,
            self.out,
            start,
            halves,
        )
        if s.concurrent:
            outcomes = run_methods_concurrently(job, self.configs, self.tell, self.on_stage)
            for method in METHODS:
                self.finish(method, outcomes[method])
            return
        for method in s.methods:  # each method finished before the next starts: a crash keeps it
            outcome = job.run(
                method,
                self.configs[method],
                progress=progress,
                tell=self.tell,
                on_stage=functools.partial(self.on_stage, method),
            )
            self.finish(method, outcome)

    def conclude(self, t_start: float) -> None:
        res = self.results
        s = res.settings
        if s.compared:  # the CryoGEN curve against the baseline's final PSNR
            res.time_to_quality = time_to_quality(
                res.scores["isonet"].get("psnr"),
                res.training["isonet"].minutes,
                res.curves["cryogen"],
            )
        res.stability = {m: largest_drop(res.curves[m]) for m in METHODS if m in s.methods}
        res.targets = run_targets(
            s.case, res.scores, s.paper_protocol, res.stability.get("cryogen")
        )
        psnr_time_figure(res, self.out / "psnr_vs_time.png")
        res.files += ["psnr_vs_time.png", "results.md", RESULTS_FILE]
        res.status = "complete"
        res.total_minutes = (time.perf_counter() - t_start) / 60.0
        self.save()
        self.tell(f"time to quality: {ttq_text(res.time_to_quality)}")


def run_benchmark(
    settings: BenchmarkSettings,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = False,
    say: Say | None = None,
    command: str | None = None,
) -> BenchmarkResults:
    """Run one benchmark case end to end and write its folder (see the module docstring).

    Parameters
    ----------
    settings
        The case and options; checked first.
    out_dir
        Output folder (created).  One that already holds ``results.json`` is refused unless
        ``overwrite``; with it, the training runs in ``runs/`` are started again.
    progress
        Show the training progress bars.
    say
        Called with one line per stage (the CLI prints them); they are also logged.
    command
        The command line that started the run, recorded in ``results.json``.

    Returns
    -------
    BenchmarkResults
        The content of ``results.json``.
    """
    settings.check()
    s = settings.resolved()
    out = Path(out_dir)
    tell = teller(say)
    # the configs first: a bad override fails before anything is written or built
    configs = {m: train_config(s, m) for m in s.methods}
    if not overwrite:
        refuse_held([out], "benchmark results", "overwrite")
    make_output_dir(out, "volumes")
    t_start = time.perf_counter()
    tell(f"building the {s.case} case")
    case = s.build_case()
    results = BenchmarkResults(
        settings=s,
        started=dt.datetime.now().isoformat(timespec="seconds"),
        machine=_machine(),
        command=command,
        description=case.description,
        n_volumes=len(case.truth),
        shape=list(case.truth[0].shape),
        voxel_size=case.voxel_size,
        paper_table1=paper_table1(s.case),
    )
    run = _Run(out, case, configs, results, tell)
    start = run.score_references()
    run.train_methods(start, progress)
    run.conclude(t_start)
    return results
