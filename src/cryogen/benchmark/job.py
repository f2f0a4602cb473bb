"""One method's work in a benchmark run: train it, score its checkpoints, predict, and
report each stage; the same job runs in this process or in a worker of its own."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.benchmark.results import (
    CurvePoint,
    Scores,
    TrainingRecord,
)
from cryogen.benchmark.scoring import score_volumes
from cryogen.benchmark.settings import METHOD_LABELS, BenchmarkSettings

__all__ = [
    "MethodJob",
    "MethodOutcome",
    "OnStage",
    "Say",
    "blur_from_halves",
    "predict_volumes",
    "prediction_options",
    "teller",
]

logger = logging.getLogger(__name__)

#: Receives one line per stage of a run (the command line prints them).
Say = Callable[[str], None]

#: ``on_stage(kind, value)``: a method's ``"training"`` (a :class:`TrainingRecord`) or its
#: ``"curves"`` (a list of :class:`CurvePoint`) is done.
OnStage = Callable[[str, Any], None]


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
    from cryogen.predict import predict_volume

    options = prediction_options(model, tta=tta)
    return [predict_volume(model, v, options) for v in volumes]


def prediction_options(model: Any, *, tta: bool = False) -> Any:
    """The benchmark's :class:`~cryogen.predict.PredictOptions`: tiles of the training crop,
    overlap ``min(16, tile // 4)``."""
    from cryogen.predict import PredictOptions

    roi = int(model.crop_size)
    return PredictOptions(tile=roi, overlap=min(16, roi // 4), tta=tta)


def blur_from_halves(
    model: Any,
    preds: Sequence[np.ndarray],
    halves: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    tta: bool = False,
) -> tuple[list[np.ndarray], list[float]]:
    """Each prediction blurred by the width its volume's half-sets choose, as ``cryogen
    predict --blur auto`` does (:func:`cryogen.predict.half_blur.choose_half_set_blur`; no
    truth used); the widths."""
    from cryogen.predict.blur import blurred
    from cryogen.predict.half_blur import choose_half_set_blur

    options = prediction_options(model, tta=tta)
    sigmas = [choose_half_set_blur(model, a, b, options).sigma for a, b in halves]
    return [blurred(p, s) for p, s in zip(preds, sigmas, strict=True)], sigmas


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
    which the untrained generator returns.  ``halves``: the case's half-sets, trained on
    (Noise2Noise) where given; the methods predict ``corrupted``, their mean.
    """

    settings: BenchmarkSettings
    corrupted: list[np.ndarray]
    truth: list[np.ndarray]
    voxel_size: float
    out: Path
    start: CurvePoint
    halves: list[tuple[np.ndarray, np.ndarray]] | None = None

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
            halves=self.halves,
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
        raw = curve[-1].psnr  # the final prediction's, scored with the curve
        if final is None:  # no snapshot (training saves one at the end)
            model = load_model(run_dir, cfg.device)
            final = model, predict_volumes(model, self.corrupted, tta=self.settings.tta)
            raw = self._score(final[1], full=False).get("psnr")
        preds, extra = final[1], {}
        if self.halves is not None and self.settings.blur == "auto":
            preds, sigmas = blur_from_halves(final[0], preds, self.halves, tta=self.settings.tta)
            extra = {"half_blur_sigma": float(np.median(sigmas)), "psnr_unblurred": raw}
            tell(f"{label}: blur chosen from the half-sets, sigma {extra['half_blur_sigma']:g}")
        tell(f"scoring {label} with every metric")
        score = self._score(preds)
        score.metrics.update(extra)
        score.checkpoint = str(Path(final[0].path).relative_to(self.out))
        return MethodOutcome(score, preds[0])

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
