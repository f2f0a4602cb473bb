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
at the same time on two halves of the CPUs (:mod:`cryogen.benchmark.concurrent`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.benchmark.cases import REFERENCES, BenchmarkCase, build_case, paper_table1
from cryogen.benchmark.concurrent import run_methods_concurrently
from cryogen.benchmark.report import method_figure, psnr_time_figure, render_markdown, ttq_text
from cryogen.benchmark.results import (
    RESULTS_FILE,
    BenchmarkResults,
    CurvePoint,
    Scores,
    TrainingRecord,
    make_output_dir,
    refuse_held,
    save_volume,
)
from cryogen.benchmark.scoring import largest_drop, run_targets, score_volumes, time_to_quality
from cryogen.benchmark.settings import METHOD_LABELS, METHODS, BenchmarkSettings, train_config
from cryogen.errors import OutputError
from cryogen.io import write_json, write_text_atomic

__all__ = [
    "MethodJob",
    "MethodOutcome",
    "Say",
    "predict_volumes",
    "run_benchmark",
    "teller",
]

logger = logging.getLogger(__name__)

#: Receives one line per stage of a run (the command line prints them).
Say = Callable[[str], None]

#: ``on_stage(kind, value)``: a method's ``"training"`` (a :class:`TrainingRecord`) or its
#: ``"curves"`` (a list of :class:`CurvePoint`) is done.
OnStage = Callable[[str, Any], None]

UNTRAINED_NOTE = "untrained generator = identity (zero-initialised residual head) = the input"


def teller(say: Say | None, *, log: bool = True) -> Say:
    """A function that logs a line (with ``log``) and passes it to ``say``."""

    def tell(msg: str) -> None:
        if log:
            logger.info(msg)
        if say is not None:
            say(msg)

    return tell


def predict_volumes(
    model: Any, volumes: Sequence[np.ndarray | torch.Tensor], *, tta: bool = False
) -> list[np.ndarray]:
    """Predict every volume with :func:`cryogen.predict.predict_volume` in tiles of the
    training crop, as ``cryogen predict`` (overlap ``min(16, tile // 4)``; ``tta`` as its
    ``--tta``)."""
    from cryogen.predict import PredictOptions, predict_volume

    roi = int(model.crop_size)
    options = PredictOptions(tile=roi, overlap=min(16, roi // 4), tta=tta)
    return [predict_volume(model, v, options) for v in volumes]


@dataclass
class MethodOutcome:
    """A trained method's scores (every metric) and its prediction of the first volume."""

    score: Scores
    first_pred: np.ndarray


@dataclass
class MethodJob:
    """Train one method on a case, score its checkpoints and its final prediction.

    Picklable, so that :func:`cryogen.benchmark.concurrent.run_methods_concurrently` can hand
    it to a child process.  ``start`` is the first point of every curve: the corrupted input,
    which the untrained generator returns.
    """

    settings: BenchmarkSettings
    corrupted: list[np.ndarray]
    truth: list[np.ndarray]
    voxel_size: float
    out: Path
    start: CurvePoint

    def run(
        self,
        method: str,
        cfg: Any,
        *,
        progress: bool,
        tell: Say,
        on_stage: OnStage,
        callback: Callable[[dict[str, Any]], Any] | None = None,
    ) -> MethodOutcome | None:
        """Train, score every checkpoint (the PSNR-time curve), score the last with every
        metric.  ``on_stage`` reports the training and the curve as they finish.  Returns
        None when the training was interrupted (its checkpoint is in the run folder)."""
        from cryogen.model import load_model
        from cryogen.train import train

        label = METHOD_LABELS[method]
        run_dir = self.out / "runs" / method
        budget = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.minutes:g} min"
        tell(f"training {label} ({budget}) in {run_dir}")
        res = train(
            cfg,
            self.corrupted,
            run_dir,
            voxel_size=self.voxel_size,
            overwrite=True,
            progress=progress,
            callback=callback,
        )
        minutes = res.elapsed_s / 60.0
        config = cfg.model_dump(mode="json")
        run_rel = str(Path("runs") / method)
        on_stage("training", TrainingRecord(res.step, minutes, res.interrupted, run_rel, config))
        if res.interrupted:
            return None
        from cryogen.model import SNAPSHOT_DIR

        snaps = sorted((run_dir / SNAPSHOT_DIR).glob("step_*.pt"))
        tell(f"{label}: {res.step} steps in {minutes:.2f} min; scoring {len(snaps)} checkpoints")
        curve, final = self._curve(method, snaps, cfg.device, tell)
        on_stage("curves", curve)
        if final is None:  # no snapshot (training saves one at the end)
            model = load_model(run_dir, cfg.device)
            final = model, predict_volumes(model, self.corrupted, tta=self.settings.tta)
        tell(f"scoring {label} with every metric")
        score = self._score(final[1])
        score.checkpoint = str(Path(final[0].path).relative_to(self.out))
        return MethodOutcome(score, final[1][0])

    def _score(self, preds: list[np.ndarray], full: bool = True) -> Scores:
        s = self.settings
        return score_volumes(
            preds,
            self.truth,
            tilt_min=s.tilt_min,
            tilt_max=s.tilt_max,
            voxel_size=self.voxel_size,
            full=full,
        )

    def _curve(
        self, method: str, snaps: list[Path], device: str, tell: Say
    ) -> tuple[list[CurvePoint], tuple[Any, list[np.ndarray]] | None]:
        """Scale-fitted PSNR and global SSIM of every snapshot of a run; the last snapshot's
        model and predictions."""
        from cryogen.model import load_checkpoint, load_model

        curve = [self.start]
        final = None
        for snap in snaps:
            model = load_model(snap, device)
            state = load_checkpoint(snap)
            step, minutes = int(state["step"]), float(state["elapsed_s"]) / 60.0
            preds = predict_volumes(model, self.corrupted, tta=self.settings.tta)
            sc = self._score(preds, full=False)
            psnr, ssim = sc.get("psnr"), sc.get("ssim_global")
            curve.append(CurvePoint(minutes, psnr, ssim, step))
            tell(
                f"  {METHOD_LABELS[method]} step {step} ({minutes:.2f} min): PSNR {psnr:.2f} dB, "
                f"SSIM {ssim:.4f}"
            )
            final = model, preds
        return curve, final


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
            self.tell(f"scoring the {ref.label} input")
            volumes = ref.volumes(case)
            res.scores[name] = score_volumes(
                volumes,
                case.truth,
                tilt_min=s.tilt_min,
                tilt_max=s.tilt_max,
                voxel_size=case.voxel_size,
            )
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
        job = MethodJob(
            s, [c.numpy() for c in case.corrupted], truth, case.voxel_size, self.out, start
        )
        if s.concurrent:
            outcomes = run_methods_concurrently(job, self.configs, self.tell, self.on_stage)
            for method in METHODS:
                self.finish(method, outcomes[method])
            return
        for method in METHODS:  # each method finished before the next starts: a crash keeps it
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
        res.time_to_quality = time_to_quality(
            res.scores["isonet"].get("psnr"), res.training["isonet"].minutes, res.curves["cryogen"]
        )
        res.stability = {m: largest_drop(res.curves[m]) for m in METHODS}
        s = res.settings
        res.targets = run_targets(s.case, res.scores, s.paper_protocol, res.stability["cryogen"])
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
    configs = {m: train_config(s, m) for m in METHODS}
    if not overwrite:
        refuse_held([out], "benchmark results", "overwrite")
    make_output_dir(out, "volumes")
    t_start = time.perf_counter()
    tell(f"building the {s.case} case")
    case = build_case(
        s.case,
        size=s.size,
        seed=s.seed,
        tilt_min=s.tilt_min,
        tilt_max=s.tilt_max,
        snr=s.snr,
        wedge=s.wedge,
        tilt_step=s.tilt_step,
    )
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
