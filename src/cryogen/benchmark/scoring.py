"""Scores of a benchmark: volumes against the truth, time to quality, stability, targets.

Every score is taken after a least-squares fit ``a * pred + b`` of each volume to its truth
(:func:`cryogen.metrics.evaluate` with ``scale_fit=True``).  *Time to quality* is the
training time CryoGEN needs to reach the baseline's final PSNR, as a fraction of the
baseline's budget (the paper's headline claim is a tenth).  *Stability* is the largest PSNR
drop of a checkpoint below the best one before it, after the first minutes of training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cryogen.benchmark.cases import CASES
from cryogen.benchmark.results import CurvePoint, Scores, Target, TimeToQuality, VolumeScore

__all__ = [
    "STABLE_AFTER_MINUTES",
    "STABLE_DROP_DB",
    "largest_drop",
    "run_targets",
    "score_volumes",
    "stability_target",
    "time_to_quality",
]

#: The stability target: after the first ``STABLE_AFTER_MINUTES`` of training no checkpoint
#: falls more than ``STABLE_DROP_DB`` below the best checkpoint before it.
STABLE_AFTER_MINUTES = 2.0
STABLE_DROP_DB = 1.0

#: Metrics on which CryoGEN should be at least as good as the baseline.
COMPARED_METRICS = ("psnr", "ssim_global")


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def score_volumes(
    preds: Sequence[np.ndarray | torch.Tensor],
    truths: Sequence[np.ndarray | torch.Tensor],
    *,
    tilt_min: float,
    tilt_max: float,
    voxel_size: float,
    full: bool = True,
) -> Scores:
    """Score predictions against the truth, volume by volume, and average.

    Parameters
    ----------
    preds, truths
        Equally long lists of ``(z, y, x)`` volumes, pairwise the same shape.
    full
        Every metric of :func:`cryogen.metrics.evaluate` (scale fit on); ``False``: only PSNR
        and global SSIM after the scale fit (cheap, for the training curves).

    Returns
    -------
    Scores
        The mean of every numeric metric over the volumes (non-finite values, such as a
        resolution never reaching the criterion, are left out of the mean), the metadata of
        ``evaluate``, and the per-volume PSNR and global SSIM.
    """
    from cryogen.metrics import apply_scale_fit, evaluate, psnr, ssim_global

    if len(preds) != len(truths) or not preds:
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths")
    rows: list[dict[str, object]] = []
    for p, t in zip(preds, truths, strict=True):
        if full:
            rows.append(
                evaluate(
                    p,
                    t,
                    tilt_min=tilt_min,
                    tilt_max=tilt_max,
                    scale_fit=True,
                    voxel_size=voxel_size,
                )
            )
        else:
            f = apply_scale_fit(p, t)
            rows.append({"psnr": psnr(f, t), "ssim_global": ssim_global(f, t), "scale_fit": True})
    metrics: dict[str, object] = {}
    for key, v0 in rows[0].items():
        if isinstance(v0, bool) or not isinstance(v0, (int, float)):
            metrics[key] = v0
            continue
        vals = [float(r[key]) for r in rows if math.isfinite(float(r[key]))]  # type: ignore[arg-type]
        metrics[key] = float(np.mean(vals)) if vals else None
    per_volume = [
        VolumeScore(_finite_or_none(float(r["psnr"])), float(r["ssim_global"]))  # type: ignore[arg-type]
        for r in rows
    ]
    return Scores(metrics, len(rows), per_volume)


def time_to_quality(
    baseline_psnr: float, baseline_minutes: float, curve: Sequence[CurvePoint]
) -> TimeToQuality:
    """Training time at which a PSNR curve first reaches the baseline's final PSNR.

    Parameters
    ----------
    baseline_psnr
        The baseline's final PSNR (dB).
    baseline_minutes
        The baseline's training time (minutes): the denominator of the fraction.
    curve
        The other method's checkpoints (the first may be the untrained generator at 0
        minutes), in any order.

    Returns
    -------
    TimeToQuality
        ``minutes`` interpolates linearly between the two checkpoints around the crossing;
        ``minutes_checkpoint`` is the first checkpoint at or above the baseline (an upper
        bound); the fractions divide both by ``baseline_minutes``.
    """
    pts = sorted(((c.minutes, c.psnr) for c in curve if c.psnr is not None), key=lambda p: p[0])
    out = TimeToQuality(float(baseline_psnr), float(baseline_minutes))
    for i, (t, p) in enumerate(pts):
        if p >= baseline_psnr:
            t_interp = t
            if i > 0:
                t0, p0 = pts[i - 1]
                if p > p0:
                    t_interp = t0 + (baseline_psnr - p0) * (t - t0) / (p - p0)
            out.reached, out.minutes, out.minutes_checkpoint = True, t_interp, t
            if baseline_minutes > 0:
                out.fraction = t_interp / baseline_minutes
                out.fraction_checkpoint = t / baseline_minutes
            break
    return out


def largest_drop(
    curve: Sequence[CurvePoint], after_minutes: float = STABLE_AFTER_MINUTES
) -> float | None:
    """How far a PSNR curve falls below its own best: the largest ``best before - PSNR``
    (dB, >= 0) over the checkpoints taken after ``after_minutes``, the best over every
    checkpoint before each (the stability target: at most ``STABLE_DROP_DB``).

    The first point may be the untrained generator at 0 minutes; the order is time's.  None
    when no checkpoint comes after ``after_minutes`` with one before it.
    """
    pts = sorted((c.minutes, c.psnr) for c in curve if c.psnr is not None)
    best, drop = -math.inf, None
    for t, p in pts:
        if t > after_minutes and math.isfinite(best):
            drop = max(drop or 0.0, best - p)
        best = max(best, p)
    return drop


def stability_target(drop: float | None, what: str = "") -> list[Target]:
    """The stability target for a largest drop (:func:`largest_drop`): one :class:`Target`,
    none without a measured drop."""
    if drop is None:
        return []
    return [
        Target(
            f"CryoGEN stable{what}: after {STABLE_AFTER_MINUTES:g} min no checkpoint "
            f"more than {STABLE_DROP_DB:g} dB below the best before it",
            bool(drop <= STABLE_DROP_DB),
            f"largest drop {drop:.2f} dB",
        )
    ]


def run_targets(
    case: str, scores: dict[str, Scores], paper_protocol: bool, drop: float | None = None
) -> list[Target]:
    """The targets of one run: CryoGEN at least as good as the baseline on PSNR and global
    SSIM, CryoGEN's PSNR at the case's target under the paper's protocol, and CryoGEN stable
    (with its largest drop)."""
    out: list[Target] = []
    iso, cg = scores.get("isonet"), scores.get("cryogen")
    if iso and cg:
        for key in COMPARED_METRICS:
            a, b = cg.get(key), iso.get(key)
            if a is not None and b is not None:
                out.append(
                    Target(f"CryoGEN >= IsoNet-style on {key}", bool(a >= b), f"{a:.4g} vs {b:.4g}")
                )
    blur = scores.get("blur")
    if blur is not None and blur.get("psnr") is not None:
        b = float(blur.get("psnr"))
        for label, sc in (("IsoNet-style", iso), ("CryoGEN", cg)):
            a = sc.get("psnr") if sc else None
            if a is not None:
                out.append(
                    Target(
                        f"{label} PSNR above the best Gaussian blur's",
                        bool(a > b),
                        f"{a:.2f} vs {b:.2f} dB ({a - b:+.2f})",
                    )
                )
    target = CASES[case].psnr_target if case in CASES else None
    psnr = cg.get("psnr") if cg else None
    if paper_protocol and target is not None and psnr is not None:
        out.append(Target(f"CryoGEN PSNR >= {target:g} dB", bool(psnr >= target), f"{psnr:.2f} dB"))
    return out + stability_target(drop)
