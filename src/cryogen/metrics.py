"""Image-quality metrics for restored tomograms (appendix A.3.1 of the paper and beyond).

Every function takes numpy arrays or torch tensors (any device, any real dtype), computes in
float64 with numpy and returns Python floats or numpy arrays.  Volumes are indexed
``(z, y, x)`` (``shared/CONVENTIONS.md``): the beam runs along ``z``, the tilt axis is ``y``
and the missing wedge lies around the ``kz`` axis.

Metrics
-------
``psnr``
    ``10 log10(max(gt)^2 / mean((pred - gt)^2))``: the paper's definition, with the peak
    taken as the maximum of the ground truth (not the data range).
``ssim_global``
    The paper's SSIM: one window over the whole volume, population (biased) variances,
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = max(gt) - min(gt)``.
``ssim_windowed``
    The usual SSIM of Wang et al. (2004) as scikit-image computes it by default: a uniform
    ``win_size^d`` window, sample covariances, averaged over the region at least
    ``(win_size - 1) // 2`` voxels from every border.  Implemented here with cumulative
    sums (no scikit-image or scipy at run time); it agrees with
    ``skimage.metrics.structural_similarity(gt, pred, data_range=L)``.
``fsc`` / ``conical_fsc`` / ``resolution``
    Fourier shell correlation over spherical shells one Fourier pixel wide, optionally
    restricted to a double cone around ``kz``, ``ky`` or ``kx``.  Comparing a restored
    volume with a known reference, the resolution is read at the FSC = 0.5 criterion.
    ``res_z`` versus ``res_x`` (cones around ``kz`` and ``kx``) measures isotropy directly:
    a wedge-corrupted volume has no signal in the ``kz`` cone.
``wedge_correlation``
    Normalised cross-correlation of prediction and truth restricted to the missing wedge in
    Fourier space: 0 for the wedge-corrupted input, 1 for a perfect restoration.
``evaluate``
    All of the above in one dictionary, after an optional least-squares fit
    ``a * pred + b`` of the prediction to the truth's scale (networks work on normalised
    densities; every table must say whether the fit was applied).

Memory: every function makes float64 copies of its inputs.  ``ssim_windowed`` works in
slabs along the first axis, so it needs only a few extra copies of a slab; the Fourier
metrics hold two complex half spectra plus a few real half-spectrum-sized arrays, about
ten float64 copies of the volume at peak (roughly 1.5 GB for a 256^3 volume).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from cryogen.errors import InputError
from cryogen.wedge import missing_wedge_mask

__all__ = [
    "METRICS",
    "METRIC_DESCRIPTIONS",
    "Metric",
    "FSC_REFERENCE_THRESHOLD",
    "NEGLIGIBLE_POWER",
    "psnr",
    "ssim_global",
    "ssim_windowed",
    "scale_fit",
    "apply_scale_fit",
    "fsc",
    "conical_fsc",
    "resolution",
    "wedge_correlation",
    "evaluate",
]

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor

#: FSC criterion for a comparison against a known (noise-free) reference.  The 0.143
#: criterion belongs to half-map FSCs; against the truth the usual criterion is 0.5.
FSC_REFERENCE_THRESHOLD = 0.5

_K1 = 0.01
_K2 = 0.03

#: Fourier power below this fraction of a volume's total non-DC power counts as none.  It
#: catches the rounding residue a wedge-corrupted volume keeps inside its wedge (about
#: 1e-30 of the power after a float64 FFT round trip, 1e-14 after a float32 one), which
#: would otherwise produce correlations of order 1 out of noise.
NEGLIGIBLE_POWER = 1e-10

@dataclass(frozen=True)
class Metric:
    """A score of :func:`evaluate`, as tables show it.

    Attributes
    ----------
    name : str
        The key in ``evaluate``'s result.
    label : str
        Column or row label, with units.
    description : str
        One line: what it measures, with units.
    higher_is_better : bool
    fmt : str
        Format of a value (``"{:.2f}"``).
    """

    name: str
    label: str
    description: str
    higher_is_better: bool
    fmt: str

    def format(self, value: Any) -> str:
        """``value`` as tables print it (``n/a`` for missing or non-finite)."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return self.fmt.format(value)


#: Every score ``evaluate`` returns, in the order tables print them.  Adding a metric is one
#: entry here and its computation in ``evaluate``.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "psnr",
            "PSNR (dB)",
            "PSNR, 10 log10(max(gt)^2 / MSE) over the whole volume (dB, higher is better)",
            True,
            "{:.2f}",
        ),
        Metric(
            "ssim_global",
            "SSIM global",
            "SSIM with one window over the whole volume, as in the paper (unitless, <= 1)",
            True,
            "{:.4f}",
        ),
        Metric(
            "ssim_windowed",
            "SSIM windowed",
            "mean SSIM over 7^3 uniform windows, as scikit-image (unitless, <= 1)",
            True,
            "{:.4f}",
        ),
        Metric(
            "wedge_corr",
            "wedge corr",
            "correlation with the truth inside the missing wedge in Fourier space "
            "(unitless, 0 for the corrupted input, 1 is perfect)",
            True,
            "{:.3f}",
        ),
        Metric(
            "res_z",
            "res_z (Å)",
            "resolution along z: FSC = 0.5 vs truth in a cone around kz (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "res_x",
            "res_x (Å)",
            "resolution along x: FSC = 0.5 vs truth in a cone around kx (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "fsc_res",
            "FSC res (Å)",
            "global resolution: FSC = 0.5 vs truth over full shells (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "mse",
            "MSE",
            "mean squared error after the optional scale fit (squared density units)",
            False,
            "{:.3g}",
        ),
    )
}

#: One-line description (with units) of every key ``evaluate`` returns, for tables: the
#: scores of :data:`METRICS`, then the settings they were computed with.
METRIC_DESCRIPTIONS: dict[str, str] = {
    **{m.name: m.description for m in METRICS.values()},
    "scale_fit": "whether pred was replaced by a * pred + b (least squares) before scoring",
    "scale": "slope a of the least-squares fit a * pred + b to gt (1 without the fit)",
    "offset": "offset b of the least-squares fit a * pred + b to gt (0 without the fit)",
    "voxel_size": "voxel size used to express resolutions (Å / voxel)",
    "tilt_min": "lowest tilt angle defining the missing wedge (degrees)",
    "tilt_max": "highest tilt angle defining the missing wedge (degrees)",
    "cone_half_angle": "half-angle of the double cones of the conical FSC (degrees)",
    "fsc_threshold": "FSC criterion used for the resolutions (unitless)",
}


# --------------------------------------------------------------------------- input checks


def _as_float64(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a float64 numpy array (a copy for tensors), rejecting NaN/inf."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise InputError(f"{name} must be real, got a complex tensor of shape {tuple(x.shape)}")
        arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        arr = np.asarray(x)
        if np.iscomplexobj(arr):
            raise InputError(f"{name} must be real, got a complex array of shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} of shape {arr.shape} contains NaN or infinite values")
    return arr


def _pair(
    pred: ArrayLike, gt: ArrayLike, names: tuple[str, str] = ("pred", "gt"), ndim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float64(pred, names[0])
    b = _as_float64(gt, names[1])
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} and {names[1]} must have the same shape, got {names[0]} {a.shape} "
            f"and {names[1]} {b.shape}"
        )
    if ndim is not None and a.ndim != ndim:
        raise InputError(f"expected {ndim}-D volumes (z, y, x), got shape {a.shape}")
    return a, b


def _data_range(gt: np.ndarray, data_range: float | None) -> float:
    if data_range is None:
        L = float(gt.max() - gt.min())
        if L <= 0:
            raise ValueError(
                f"gt of shape {gt.shape} is constant ({float(gt.flat[0])}): its range "
                "max(gt) - min(gt) is 0, pass data_range explicitly"
            )
        return L
    L = float(data_range)
    if not (L > 0 and math.isfinite(L)):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return L


# --------------------------------------------------------------------------- real space


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
    p, g = _pair(pred, gt)
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
    p, g = _pair(pred, gt)
    L = _data_range(g, data_range)
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
    p, g = _pair(pred, gt)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    if min(p.shape) < win_size:
        raise ValueError(f"win_size {win_size} exceeds the extent of the volumes, shape {p.shape}")
    L = _data_range(g, data_range)
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
    p, g = _pair(pred, gt)
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
    p = _as_float64(pred, "pred")
    a, b = scale_fit(p, gt)
    return a * p + b


# --------------------------------------------------------------------------- Fourier space


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


def _fsc_spectra(
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
    x, y = _pair(a, b, ("a", "b"), ndim=3)
    return _fsc_spectra(np.fft.rfftn(x), np.fft.rfftn(y), x.shape, n_shells)


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
    x, y = _pair(a, b, ("a", "b"), ndim=3)
    return _fsc_spectra(np.fft.rfftn(x), np.fft.rfftn(y), x.shape, n_shells, axis, half_angle)


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


def _wedge_corr_spectra(
    fp: np.ndarray, fg: np.ndarray, shape: tuple[int, ...], tilt_min: float, tilt_max: float
) -> float:
    m = missing_wedge_mask(shape, tilt_min, tilt_max, rfft=True, dtype=torch.float64)
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
    p, g = _pair(pred, gt, ndim=3)
    return _wedge_corr_spectra(np.fft.rfftn(p), np.fft.rfftn(g), p.shape, tilt_min, tilt_max)


# --------------------------------------------------------------------------- all at once


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
    p, g = _pair(pred, gt, ndim=3)
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    a, b = 1.0, 0.0
    if scale_fit:
        a, b = _fit(p, g)
        p = a * p + b
    fp, fg = np.fft.rfftn(p), np.fft.rfftn(g)
    freqs, curve = _fsc_spectra(fp, fg, p.shape, None)
    _, cz = _fsc_spectra(fp, fg, p.shape, None, "z", cone_half_angle)
    _, cx = _fsc_spectra(fp, fg, p.shape, None, "x", cone_half_angle)
    thr = FSC_REFERENCE_THRESHOLD
    out: dict[str, Any] = {
        "psnr": psnr(p, g),
        "ssim_global": ssim_global(p, g),
        "ssim_windowed": ssim_windowed(p, g) if min(p.shape) >= 7 else math.nan,
        "mse": float(np.mean((p - g) ** 2)),
        "wedge_corr": _wedge_corr_spectra(fp, fg, p.shape, tilt_min, tilt_max),
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
