"""Every metric at once, after the optional least-squares scale fit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryogen.metrics.arrays import ArrayLike, as_pair
from cryogen.metrics.fourier import (
    FSC_REFERENCE_THRESHOLD,
    fsc_from_spectra,
    resolution,
    wedge_correlation_from_spectra,
)
from cryogen.metrics.pixel import psnr, ssim_global, ssim_windowed
from cryogen.metrics.pixel import scale_fit as least_squares_fit

__all__ = ["evaluate"]


def evaluate(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    scale_fit: bool = True,
    voxel_size: float = 1.0,
    cone_half_angle: float = 30.0,
) -> dict[str, Any]:
    """Score a restored volume against the ground truth with every metric of this module.

    Parameters
    ----------
    pred, gt
        Volumes ``(z, y, x)`` of the same shape (arrays or tensors); no NaN/inf.
    tilt_min, tilt_max
        Tilt range (degrees) whose missing wedge ``wedge_corr`` looks into.
    scale_fit
        Replace ``pred`` by the least-squares ``a * pred + b`` before scoring (default; the
        networks work on normalised densities).  ``False`` scores ``pred`` as it is, as the
        paper's calibration numbers do.
    voxel_size
        Å per voxel, for the resolutions.
    cone_half_angle
        Half-angle (degrees) of the cones of ``res_z`` and ``res_x``.

    Returns
    -------
    dict
        Keys described in :data:`METRIC_DESCRIPTIONS`: ``psnr``, ``ssim_global``,
        ``ssim_windowed``, ``mse``, ``wedge_corr``, ``res_z``, ``res_x``, ``fsc_res`` (Å,
        FSC = 0.5 criterion), ``scale_fit``, ``scale``, ``offset``, ``voxel_size``,
        ``tilt_min``, ``tilt_max``, ``cone_half_angle``, ``fsc_threshold``.
    """
    p, g = as_pair(pred, gt, ndim=3)
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    a, b = 1.0, 0.0
    if scale_fit:
        a, b = least_squares_fit(p, g)
        p = a * p + b
    fp, fg = np.fft.rfftn(p), np.fft.rfftn(g)
    freqs, curve = fsc_from_spectra(fp, fg, p.shape, None)
    _, cz = fsc_from_spectra(fp, fg, p.shape, None, "z", cone_half_angle)
    _, cx = fsc_from_spectra(fp, fg, p.shape, None, "x", cone_half_angle)
    thr = FSC_REFERENCE_THRESHOLD
    out: dict[str, Any] = {
        "psnr": psnr(p, g),
        "ssim_global": ssim_global(p, g),
        "ssim_windowed": ssim_windowed(p, g) if min(p.shape) >= 7 else math.nan,
        "mse": float(np.mean((p - g) ** 2)),
        "wedge_corr": wedge_correlation_from_spectra(fp, fg, p.shape, tilt_min, tilt_max),
        "res_z": resolution(freqs, cz, threshold=thr, voxel_size=voxel_size),
        "res_x": resolution(freqs, cx, threshold=thr, voxel_size=voxel_size),
        "fsc_res": resolution(freqs, curve, threshold=thr, voxel_size=voxel_size),
        "scale_fit": bool(scale_fit),
        "scale": float(a),
        "offset": float(b),
        "voxel_size": float(voxel_size),
        "tilt_min": float(tilt_min),
        "tilt_max": float(tilt_max),
        "cone_half_angle": float(cone_half_angle),
        "fsc_threshold": thr,
    }
    return out
