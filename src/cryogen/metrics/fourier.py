"""Fourier-space metrics: (conical) FSC, resolution, correlation inside the missing wedge.

Spectra are the half spectra of ``numpy.fft.rfftn`` of ``(z, y, x)`` volumes; sums over the
full spectrum are taken with Hermitian weights.  :func:`fsc_from_spectra` and
:func:`wedge_correlation_from_spectra` let a caller that scores one pair of volumes several
ways transform each volume once.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from cryogen.metrics.arrays import ArrayLike, as_pair
from cryogen.wedge import missing_wedge_mask

__all__ = [
    "FSC_REFERENCE_THRESHOLD",
    "NEGLIGIBLE_POWER",
    "conical_fsc",
    "fsc",
    "fsc_from_spectra",
    "resolution",
    "wedge_correlation",
    "wedge_correlation_from_spectra",
]

#: FSC criterion for a comparison against a known (noise-free) reference.  The 0.143
#: criterion belongs to half-map FSCs; against the truth the usual criterion is 0.5.
FSC_REFERENCE_THRESHOLD = 0.5


#: Fourier power below this fraction of a volume's total non-DC power counts as none.  It
#: catches the rounding residue a wedge-corrupted volume keeps inside its wedge (about
#: 1e-30 of the power after a float64 FFT round trip, 1e-14 after a float32 one), which
#: would otherwise produce correlations of order 1 out of noise.
NEGLIGIBLE_POWER = 1e-10


def _rfft_weights(nx: int) -> np.ndarray:
    """Weights ``(nx // 2 + 1,)`` turning sums over the half spectrum into full-spectrum sums.

    Columns ``0 < kx < nx / 2`` stand for themselves and their Hermitian partners (weight 2);
    the ``kx = 0`` column and, for even ``nx``, the Nyquist column appear once in the full
    spectrum (weight 1).
    """
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def _ac_power(f: np.ndarray, w: np.ndarray) -> float:
    """Total power of the full spectrum except the DC term, from a weighted half spectrum."""
    return float(np.sum(w * (f.real**2 + f.imag**2))) - float(abs(f[0, 0, 0]) ** 2)


def _freq_grids(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable ``kz, ky, kx`` (cycles/voxel) of the half spectrum of ``shape``."""
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz)[:, None, None]
    ky = np.fft.fftfreq(ny)[None, :, None]
    kx = np.fft.rfftfreq(nx)[None, None, :]
    return kz, ky, kx


def _shells(shape: tuple[int, ...], n_shells: int | None) -> tuple[np.ndarray, float]:
    """Shell frequencies (cycles/voxel) and shell width."""
    if n_shells is None:
        n = min(shape)
        if n < 2:
            raise ValueError(f"volumes must be at least 2 voxels along every axis, got {shape}")
        return np.arange(n // 2 + 1) / n, 1.0 / n
    if n_shells < 2:
        raise ValueError(f"n_shells must be >= 2, got {n_shells}")
    return np.linspace(0.0, 0.5, n_shells), 0.5 / (n_shells - 1)


_AXES = {"z": 0, "y": 1, "x": 2}


def fsc_from_spectra(
    fa: np.ndarray,
    fb: np.ndarray,
    shape: tuple[int, ...],
    n_shells: int | None,
    axis: str | None = None,
    half_angle: float = 90.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(Conical) FSC from two half spectra ``(z, y, x // 2 + 1)`` of volumes of ``shape``."""
    freqs, width = _shells(shape, n_shells)
    kz, ky, kx = _freq_grids(shape)
    r = np.sqrt(kz * kz + ky * ky + kx * kx)  # (z, y, x//2+1)
    idx = np.rint(r / width).astype(np.int64)
    keep = idx < freqs.size
    if axis is not None:
        if axis not in _AXES:
            raise ValueError(f"axis must be 'z', 'y' or 'x', got {axis!r}")
        if not 0.0 < half_angle <= 90.0:
            raise ValueError(f"half_angle must be in (0, 90] degrees, got {half_angle}")
        k_axis = np.abs((kz, ky, kx)[_AXES[axis]])
        # angle to the axis <= half_angle  <=>  |k_axis| >= |k| cos(half_angle); DC included
        keep &= k_axis >= r * math.cos(math.radians(half_angle)) - 1e-12
    del r
    w = np.broadcast_to(_rfft_weights(shape[2])[None, None, :], fa.shape)
    tiny_a = NEGLIGIBLE_POWER * _ac_power(fa, w)
    tiny_b = NEGLIGIBLE_POWER * _ac_power(fb, w)
    idx_k, w_k = idx[keep], w[keep]
    a_k, b_k = fa[keep], fb[keep]
    n = freqs.size
    count = np.bincount(idx_k, minlength=n)[:n]
    num = np.bincount(idx_k, weights=w_k * (a_k * b_k.conj()).real, minlength=n)[:n]
    pa = np.bincount(idx_k, weights=w_k * (a_k.real**2 + a_k.imag**2), minlength=n)[:n]
    pb = np.bincount(idx_k, weights=w_k * (b_k.real**2 + b_k.imag**2), minlength=n)[:n]
    den = np.sqrt(pa * pb)
    curve = np.zeros(n)
    ok = (pa > tiny_a) & (pb > tiny_b)
    curve[ok] = num[ok] / den[ok]
    curve[count == 0] = np.nan
    return freqs, np.clip(curve, -1.0, 1.0)


def fsc(
    a: ArrayLike, b: ArrayLike, *, n_shells: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fourier shell correlation of two volumes.

    ``FSC(k) = Re(sum_shell A conj(B)) / sqrt(sum_shell |A|^2 sum_shell |B|^2)`` over
    spherical shells of the full 3D spectrum (computed from the half spectrum of ``rfftn``
    with Hermitian weights).  Frequencies are in cycles/voxel along every axis, so the shells
    stay spherical in real units for non-cubic volumes.

    Parameters
    ----------
    a, b
        Volumes ``(z, y, x)`` of the same shape.
    n_shells
        Number of shells from 0 to 0.5 cycles/voxel.  Default ``N // 2 + 1`` with
        ``N = min(shape)``: shells one Fourier pixel (``1 / N``) wide at ``i / N``.

    Returns
    -------
    freqs : np.ndarray
        ``(n_shells,)`` shell centres in cycles/voxel (shell 0 holds only the DC term).
    curve : np.ndarray
        ``(n_shells,)`` FSC values in ``[-1, 1]``.  A shell where either volume has no
        power, or less than ``NEGLIGIBLE_POWER`` times its total non-DC power (rounding
        residue), scores 0: nothing measurable correlates.  A shell holding no frequency at
        all (only possible with a large ``n_shells``) is NaN.  ``fsc(a, a)`` is 1 in every
        shell with (non-negligible) power.
        Frequencies beyond 0.5 cycles/voxel (the corners of the cube) are not used.
    """
    x, y = as_pair(a, b, ("a", "b"), ndim=3)
    return fsc_from_spectra(np.fft.rfftn(x), np.fft.rfftn(y), x.shape, n_shells)


def conical_fsc(
    a: ArrayLike,
    b: ArrayLike,
    *,
    axis: Literal["z", "y", "x"] = "z",
    half_angle: float = 30.0,
    n_shells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FSC restricted to the double cone of ``half_angle`` degrees around a Fourier axis.

    A frequency ``k`` is used when its angle to the ``k_axis`` axis (either direction) is at
    most ``half_angle``.  Around ``kz`` this measures the resolution along the beam, which
    the missing wedge destroys; around ``kx`` it measures the resolution across it.

    Parameters
    ----------
    a, b
        Volumes ``(z, y, x)`` of the same shape.
    axis
        ``"z"``, ``"y"`` or ``"x"``: the Fourier axis the cone is centred on.
    half_angle
        Cone half-angle in degrees, in ``(0, 90]`` (90 gives the plain FSC).
    n_shells
        As in :func:`fsc`.

    Returns
    -------
    freqs, curve : np.ndarray
        ``(n_shells,)`` each, as in :func:`fsc`.
    """
    x, y = as_pair(a, b, ("a", "b"), ndim=3)
    return fsc_from_spectra(np.fft.rfftn(x), np.fft.rfftn(y), x.shape, n_shells, axis, half_angle)


def resolution(
    freqs: ArrayLike,
    curve: ArrayLike,
    *,
    threshold: float = FSC_REFERENCE_THRESHOLD,
    voxel_size: float = 1.0,
) -> float:
    """Resolution (Å) at which an FSC curve first falls below ``threshold``.

    The default ``threshold = 0.5`` is the criterion for an FSC against a known reference
    (the ground truth); use 0.143 for half-map FSCs.

    Parameters
    ----------
    freqs, curve
        Output of :func:`fsc` or :func:`conical_fsc`; NaN shells are skipped.
    threshold
        FSC criterion.
    voxel_size
        Å per voxel.

    Returns
    -------
    float
        ``voxel_size / f`` where ``f`` is the first crossing below ``threshold`` after the
        DC shell, linearly interpolated between the two shells around it.  If the curve
        never falls below the threshold, the Nyquist resolution ``2 * voxel_size``.  If it
        is already below at the first shell after DC, ``voxel_size / freqs[1]`` (the box
        size for the default shells): no resolution can be claimed beyond the box.
    """
    f = np.asarray(freqs, dtype=np.float64).ravel()
    c = np.asarray(curve, dtype=np.float64).ravel()
    if f.shape != c.shape:
        raise ValueError(f"freqs and curve must have the same shape, got {f.shape} and {c.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    ok = np.isfinite(c)
    f, c = f[ok], c[ok]
    if f.size < 2:
        raise ValueError("the FSC curve needs at least two finite shells")
    below = np.nonzero(c[1:] < threshold)[0]
    if below.size == 0:
        return 2.0 * float(voxel_size)
    i = int(below[0]) + 1
    if i == 1:
        return float(voxel_size) / float(f[1])
    t = (c[i - 1] - threshold) / (c[i - 1] - c[i])
    f_cross = f[i - 1] + t * (f[i] - f[i - 1])
    return float(voxel_size) / float(f_cross)


def wedge_correlation_from_spectra(
    fp: np.ndarray, fg: np.ndarray, shape: tuple[int, ...], tilt_min: float, tilt_max: float
) -> float:
    """:func:`wedge_correlation` from the half spectra ``(z, y, x // 2 + 1)`` of two volumes
    of ``shape``."""
    nz, ny, nx = shape
    m = missing_wedge_mask((nz, ny, nx), tilt_min, tilt_max, rfft=True, dtype=torch.float64)
    missing = m[:, :1, :].numpy() == 0.0  # (z, 1, x//2+1); the mask is constant along ky
    missing = np.broadcast_to(missing, fp.shape)  # DC is always kept, so never in here
    w_all = np.broadcast_to(_rfft_weights(shape[2])[None, None, :], fp.shape)
    tiny_p = NEGLIGIBLE_POWER * _ac_power(fp, w_all)
    tiny_g = NEGLIGIBLE_POWER * _ac_power(fg, w_all)
    w = w_all[missing]
    p, g = fp[missing], fg[missing]
    num = float(np.sum(w * (p * g.conj()).real))
    pp = float(np.sum(w * (p.real**2 + p.imag**2)))
    gg = float(np.sum(w * (g.real**2 + g.imag**2)))
    if pp <= tiny_p or gg <= tiny_g or pp == 0.0 or gg == 0.0:
        return 0.0  # an empty wedge correlates with nothing (0/0 -> 0)
    return float(np.clip(num / math.sqrt(pp * gg), -1.0, 1.0))


def wedge_correlation(
    pred: ArrayLike, gt: ArrayLike, tilt_min: float = -60.0, tilt_max: float = 60.0
) -> float:
    """Normalised correlation of ``pred`` and ``gt`` inside the missing wedge.

    ``Re(sum_W P conj(G)) / sqrt(sum_W |P|^2 sum_W |G|^2)`` over the frequencies ``W`` that
    ``missing_wedge_mask(shape, tilt_min, tilt_max)`` marks as missing (DC is never among
    them), with ``P``, ``G`` the Fourier transforms.

    Parameters
    ----------
    pred, gt
        Volumes ``(z, y, x)`` of the same shape.
    tilt_min, tilt_max
        Tilt range (degrees) defining the wedge.

    Returns
    -------
    float
        In ``[-1, 1]``: 1 when ``pred == gt`` (with power in the wedge), 0 for the
        wedge-corrupted input, whose wedge is empty (0/0 is reported as 0).  Wedge power
        below ``NEGLIGIBLE_POWER`` times a volume's total non-DC power counts as empty, so
        the rounding residue of the corruption does not score.
    """
    p, g = as_pair(pred, gt, ndim=3)
    fp, fg = np.fft.rfftn(p), np.fft.rfftn(g)
    return wedge_correlation_from_spectra(fp, fg, p.shape, tilt_min, tilt_max)
