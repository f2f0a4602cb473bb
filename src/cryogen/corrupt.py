"""Corruption of a clean volume: the missing wedge of a tilt range, and noise.

The one home of "wedge + noise" for the package: ``cryogen corrupt``, the benchmark cases
and the tests all call :func:`corrupt`.

* ``wedge="fourier"``: ``y = T_M x`` (:mod:`cryogen.wedge`, the paper's protocol), plus,
  with ``snr``, Gaussian noise filtered by the same ``T_M`` (noise only where the tilt series
  measured) and scaled so that ``var(T_M x) / var(noise) = snr``.
* ``wedge="tilt-series"``: a tilt series of ``x`` is simulated (noise of that SNR on every
  projection) and reconstructed by weighted back-projection (:mod:`cryogen.tomo`): a
  corruption that is not the operator the training applies.
"""

from __future__ import annotations

import math

import torch

from cryogen.errors import InputError
from cryogen.wedge import missing_wedge_mask, wedge_operator

__all__ = ["WEDGES", "check_tilt_range", "corrupt", "measured_noise"]

#: How a clean volume gets its missing wedge.
WEDGES = ("fourier", "tilt-series")


def check_tilt_range(tilt_min: float, tilt_max: float) -> None:
    """Raise ``InputError`` unless ``-90 <= tilt_min < tilt_max <= 90`` (finite, degrees)."""
    if not (math.isfinite(tilt_min) and math.isfinite(tilt_max)):
        raise InputError(f"tilt_min and tilt_max must be finite, got {tilt_min}, {tilt_max}")
    if not -90.0 <= tilt_min < tilt_max <= 90.0:
        raise InputError(
            f"tilt_min ({tilt_min:g}) must be smaller than tilt_max ({tilt_max:g}), "
            "both within [-90, 90] degrees"
        )


def measured_noise(
    like: torch.Tensor, mask: torch.Tensor, snr: float, *, seed: int, signal: torch.Tensor
) -> torch.Tensor:
    """White Gaussian noise restricted to the measured region, at a given SNR.

    Parameters
    ----------
    like
        Tensor whose shape ``(..., z, y, x)`` and device the noise takes.
    mask
        Wedge mask of :func:`cryogen.wedge.missing_wedge_mask` for that shape.
    snr
        ``var(signal) / var(noise)``, positive.
    seed
        Seed of the noise (drawn on the CPU: the same numbers on every device).
    signal
        The noise-free volume whose variance sets the noise level.

    Returns
    -------
    torch.Tensor
        Same shape as ``like``, float32: ``T_M`` of white noise, scaled.
    """
    if not snr > 0:
        raise InputError(f"the SNR must be positive, got {snr:g}")
    g = torch.Generator().manual_seed(int(seed))
    noise = wedge_operator(torch.randn(tuple(like.shape), generator=g).to(like.device), mask)
    return noise * math.sqrt(float(signal.var()) / snr / float(noise.var()))


def corrupt(
    volume: torch.Tensor,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    *,
    snr: float | None = None,
    seed: int = 0,
    wedge: str = "fourier",
    soft_edge: float = 0.0,
    tilt_step: float = 3.0,
    voxel_size: float = 1.0,
) -> torch.Tensor:
    """Give a clean volume the missing wedge of a tilt range (and optionally noise).

    Parameters
    ----------
    volume
        ``(z, y, x)`` clean volume.
    tilt_min, tilt_max
        Tilt range, degrees.
    snr
        ``"fourier"``: Gaussian noise filtered by ``T_M`` and scaled so that
        ``var(T_M x) / var(noise)`` equals ``snr``.  ``"tilt-series"``: the SNR of every
        projection image.  ``None``: no noise.
    seed
        Seed of the noise.
    wedge
        ``"fourier"`` (``T_M``) or ``"tilt-series"`` (simulated tilt series, weighted
        back-projection).
    soft_edge
        Soft edge of the wedge mask, Fourier pixels (``"fourier"`` only).
    tilt_step
        Tilt increment of the simulated series, degrees (``"tilt-series"`` only).
    voxel_size
        Å per voxel (``"tilt-series"`` only).

    Returns
    -------
    torch.Tensor
        ``(z, y, x)`` float32.
    """
    if volume.ndim != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {tuple(volume.shape)}")
    check_tilt_range(tilt_min, tilt_max)
    if snr is not None and not snr > 0:
        raise InputError(f"the SNR must be positive, got {snr:g}")
    if wedge not in WEDGES:
        raise InputError(f"unknown wedge {wedge!r}: use one of {', '.join(WEDGES)}")
    x = volume.to(torch.float32)
    if wedge == "tilt-series":
        return _tilt_series(x, tilt_min, tilt_max, tilt_step, snr, seed, voxel_size)
    mask = missing_wedge_mask(x.shape, tilt_min, tilt_max, soft_edge=soft_edge, device=x.device)
    y = wedge_operator(x, mask)
    if snr is not None:
        y = y + measured_noise(x, mask, snr, seed=seed, signal=y)
    return y


def _tilt_series(
    volume: torch.Tensor,
    tilt_min: float,
    tilt_max: float,
    tilt_step: float,
    snr: float | None,
    seed: int,
    voxel_size: float,
) -> torch.Tensor:
    """Simulate a tilt series of ``volume`` and reconstruct it by weighted back-projection."""
    from cryogen.tomo import reconstruct_wbp, simulate_tilt_series, tilt_angles

    try:
        angles = tilt_angles(tilt_min, tilt_max, tilt_step)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    ts = simulate_tilt_series(volume, angles, pixel_size=voxel_size, snr=snr, seed=seed)
    nz, _, nx = volume.shape
    rec = reconstruct_wbp(ts, angles, thickness=int(nz), width=int(nx))
    rec = torch.as_tensor(rec, dtype=torch.float32)
    if tuple(rec.shape) != tuple(volume.shape):
        raise InputError(
            f"the reconstruction has shape {tuple(rec.shape)}, not the volume's "
            f"{tuple(volume.shape)}"
        )
    return rec
