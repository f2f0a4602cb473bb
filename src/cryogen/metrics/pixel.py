"""Real-space metrics: PSNR, global and windowed SSIM, and the least-squares scale fit."""

from __future__ import annotations

import logging
import math

import numpy as np

from cryogen.metrics.arrays import ArrayLike, as_float64, as_pair, resolve_data_range

__all__ = ["apply_scale_fit", "psnr", "scale_fit", "ssim_global", "ssim_windowed"]

logger = logging.getLogger(__name__)

_K1 = 0.01
_K2 = 0.03


def psnr(pred: ArrayLike, gt: ArrayLike) -> float:
    """Peak signal-to-noise ratio with the paper's peak ``max(gt)``.

    Parameters
    ----------
    pred, gt
        Arrays or tensors of the same shape, typically ``(z, y, x)``.

    Returns
    -------
    float
        ``10 log10(max(gt)^2 / mean((pred - gt)^2))`` in dB; ``inf`` when the inputs are
        identical, ``-inf`` when ``max(gt) == 0`` and they differ.
    """
    p, g = as_pair(pred, gt)
    mse = float(np.mean((p - g) ** 2))
    peak2 = float(g.max()) ** 2
    if mse == 0.0:
        return math.inf
    if peak2 == 0.0:
        return -math.inf
    return 10.0 * math.log10(peak2 / mse)


def ssim_global(pred: ArrayLike, gt: ArrayLike, *, data_range: float | None = None) -> float:
    """The paper's SSIM: a single window covering the whole volume.

    ``((2 mu_p mu_g + C1)(2 s_pg + C2)) / ((mu_p^2 + mu_g^2 + C1)(s_p^2 + s_g^2 + C2))``
    with population (biased) variances and covariance, ``C1 = (0.01 L)^2`` and
    ``C2 = (0.03 L)^2``.

    Parameters
    ----------
    pred, gt
        Arrays or tensors of the same shape.
    data_range
        ``L``; defaults to ``max(gt) - min(gt)`` (a constant ``gt`` then needs it explicitly).

    Returns
    -------
    float
        At most 1; exactly 1 for ``pred == gt``.
    """
    p, g = as_pair(pred, gt)
    L = resolve_data_range(g, data_range)
    c1, c2 = (_K1 * L) ** 2, (_K2 * L) ** 2
    mp, mg = float(p.mean()), float(g.mean())
    dp, dg = p - mp, g - mg
    vp, vg = float(np.mean(dp * dp)), float(np.mean(dg * dg))
    cov = float(np.mean(dp * dg))
    num = (2.0 * mp * mg + c1) * (2.0 * cov + c2)
    den = (mp * mp + mg * mg + c1) * (vp + vg + c2)
    return num / den


def _box_mean_valid(a: np.ndarray, w: int) -> np.ndarray:
    """Mean over every ``w^d`` box lying fully inside ``a`` ("valid" uniform filter).

    Output shape is ``a.shape - (w - 1)`` along every axis.  Uses cumulative sums, one axis
    at a time.
    """
    out = a
    for ax in range(a.ndim):
        c = np.cumsum(out, axis=ax, dtype=np.float64)
        n = c.shape[ax]
        hi = [slice(None)] * a.ndim
        lo = [slice(None)] * a.ndim
        hi[ax] = slice(w, n)
        lo[ax] = slice(0, n - w)
        first = [slice(None)] * a.ndim
        first[ax] = slice(w - 1, w)
        out = np.concatenate([c[tuple(first)], c[tuple(hi)] - c[tuple(lo)]], axis=ax)
    return out / float(w**a.ndim)


def ssim_windowed(
    pred: ArrayLike, gt: ArrayLike, *, data_range: float | None = None, win_size: int = 7
) -> float:
    """Mean windowed SSIM, matching ``skimage.metrics.structural_similarity`` defaults.

    Uniform ``win_size^d`` windows, sample (unbiased) covariances, ``K1 = 0.01``,
    ``K2 = 0.03``, and the mean over the voxels at least ``(win_size - 1) // 2`` from every
    border (scikit-image crops this strip to avoid edge effects, so the result does not
    depend on how the filter pads).  Equal, to rounding, to
    ``structural_similarity(gt, pred, data_range=L, win_size=win_size)`` on float64 input.

    Parameters
    ----------
    pred, gt
        Arrays or tensors of the same shape, any number of dimensions (typically
        ``(z, y, x)``); every side must be at least ``win_size``.
    data_range
        ``L``; defaults to ``max(gt) - min(gt)``.
    win_size
        Odd window side, at least 3.

    Returns
    -------
    float
        At most 1; exactly 1 for ``pred == gt`` (up to rounding).
    """
    p, g = as_pair(pred, gt)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    if min(p.shape) < win_size:
        raise ValueError(f"win_size {win_size} exceeds the extent of the volumes, shape {p.shape}")
    L = resolve_data_range(g, data_range)
    c1, c2 = (_K1 * L) ** 2, (_K2 * L) ** 2
    np_win = win_size**p.ndim
    cov_norm = np_win / (np_win - 1.0)
    # Shift both inputs by the same constant: variances and covariances are unchanged and the
    # box sums of squares lose fewer digits to cancellation; the means are shifted back.
    shift = float(g.mean())
    n0 = p.shape[0] - win_size + 1  # valid output planes along axis 0
    plane = int(np.prod(p.shape[1:], dtype=np.int64)) if p.ndim > 1 else 1
    step = max(1, (1 << 22) // max(plane, 1))  # output planes per slab (~32 MB per array)
    total = 0.0
    count = 0
    for o0 in range(0, n0, step):
        o1 = min(n0, o0 + step)
        x = p[o0 : o1 + win_size - 1] - shift
        y = g[o0 : o1 + win_size - 1] - shift
        ux = _box_mean_valid(x, win_size)
        uy = _box_mean_valid(y, win_size)
        vx = cov_norm * (_box_mean_valid(x * x, win_size) - ux * ux)
        vy = cov_norm * (_box_mean_valid(y * y, win_size) - uy * uy)
        vxy = cov_norm * (_box_mean_valid(x * y, win_size) - ux * uy)
        del x, y
        ux += shift
        uy += shift
        s = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        total += float(s.sum())
        count += s.size
    return total / count


def scale_fit(pred: ArrayLike, gt: ArrayLike) -> tuple[float, float]:
    """Least-squares ``a, b`` minimising ``||a * pred + b - gt||^2``.

    Parameters
    ----------
    pred, gt
        Arrays or tensors of the same shape.

    Returns
    -------
    (a, b)
        ``a = cov(pred, gt) / var(pred)``, ``b = mean(gt) - a mean(pred)``.  For a constant
        ``pred`` every ``a`` is optimal; ``a = 1`` and ``b = mean(gt) - mean(pred)`` is
        returned.
    """
    p, g = as_pair(pred, gt)
    return _fit(p, g)


def _fit(p: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    mp, mg = float(p.mean()), float(g.mean())
    dp = p - mp
    var = float(np.sum(dp * dp))
    if var == 0.0 or float(np.ptp(p)) == 0.0:
        logger.warning("scale_fit: pred of shape %s is constant; using a = 1", p.shape)
        return 1.0, mg - mp
    a = float(np.sum(dp * (g - mg))) / var
    return a, mg - a * mp


def apply_scale_fit(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Return ``a * pred + b`` (float64 numpy array) with ``a, b`` from :func:`scale_fit`."""
    p = as_float64(pred, "pred")
    a, b = scale_fit(p, gt)
    return a * p + b
