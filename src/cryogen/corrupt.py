"""Corruption of a clean volume: the missing wedge of a tilt range, and noise.

The one home of "wedge + noise" for the package: ``cryogen corrupt``, the benchmark cases
and the tests all call :func:`corrupt`.

* ``wedge="fourier"``: ``y = T_M x`` (:mod:`cryogen.wedge`, the paper's protocol), plus,
  with ``snr``, Gaussian noise filtered by the same ``T_M`` (noise only where the tilt series
  measured) and scaled so that ``var(T_M x) / var(noise) = snr``.
* ``wedge="tilt-series"``: a tilt series of ``x`` is simulated (noise of that SNR on every
  projection, or the shot noise of an electron ``dose``, optionally through a CTF) and
  reconstructed by weighted back-projection (:mod:`cryogen.tomo`): a corruption that is not
  the operator the training applies.

:func:`corrupt_halves` makes the two half-sets of one acquisition (even and odd frames):
the same specimen with independent noise, each with twice the noise variance of their mean,
so that the mean has the SNR asked for (``shared/CONVENTIONS.md``, "Noise and half-sets").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from cryogen.errors import InputError
from cryogen.wedge import missing_wedge_mask, wedge_operator

if TYPE_CHECKING:
    from cryogen.tomo import CTFParams

__all__ = ["WEDGES", "check_tilt_range", "corrupt", "corrupt_halves", "measured_noise"]

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
    _check(volume, tilt_min, tilt_max, snr, wedge)
    x = volume.to(torch.float32)
    if wedge == "tilt-series":
        return _tilt_series(x, tilt_min, tilt_max, tilt_step, snr, seed, voxel_size)
    mask = missing_wedge_mask(x.shape, tilt_min, tilt_max, soft_edge=soft_edge, device=x.device)
    y = wedge_operator(x, mask)
    if snr is not None:
        y = y + measured_noise(x, mask, snr, seed=seed, signal=y)
    return y


def corrupt_halves(
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
    dose: float | None = None,
    ctf_params: CTFParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two half-sets of a clean volume: its missing wedge, each with its own noise.

    ``"fourier"``: ``T_M x`` plus two independent draws of :func:`measured_noise`, each of
    variance ``2 var(T_M x) / snr``, so that the mean of the halves has SNR ``snr``.
    ``"tilt-series"``: the even- and the odd-frame tilt series of one acquisition
    (:func:`cryogen.tomo.simulate_half_tilt_series`: ``dose`` split between them, Poisson
    counts per half; or Gaussian noise of SNR ``snr / 2`` each; optionally the CTF
    ``ctf_params``), each reconstructed by weighted back-projection.  Other parameters as
    :func:`corrupt`; the halves need noise (``snr`` or, for a tilt series, ``dose``).

    Returns
    -------
    tuple of torch.Tensor
        ``(half1, half2)``, each ``(z, y, x)`` float32.
    """
    _check(volume, tilt_min, tilt_max, snr, wedge)
    if snr is None and not (wedge == "tilt-series" and dose is not None):
        raise InputError("half-sets need noise: give the SNR (or, for a tilt series, the dose)")
    x = volume.to(torch.float32)
    if wedge == "tilt-series":
        return _tilt_series_halves(
            x, tilt_min, tilt_max, tilt_step, snr, dose, ctf_params, seed, voxel_size
        )
    assert snr is not None
    mask = missing_wedge_mask(x.shape, tilt_min, tilt_max, soft_edge=soft_edge, device=x.device)
    y = wedge_operator(x, mask)
    s1, s2 = (int(v) for v in np.random.SeedSequence(int(seed)).generate_state(2))
    half1 = y + measured_noise(x, mask, snr / 2.0, seed=s1, signal=y)
    half2 = y + measured_noise(x, mask, snr / 2.0, seed=s2, signal=y)
    return half1, half2


def _check(
    volume: torch.Tensor, tilt_min: float, tilt_max: float, snr: float | None, wedge: str
) -> None:
    if volume.ndim != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {tuple(volume.shape)}")
    check_tilt_range(tilt_min, tilt_max)
    if snr is not None and not snr > 0:
        raise InputError(f"the SNR must be positive, got {snr:g}")
    if wedge not in WEDGES:
        raise InputError(f"unknown wedge {wedge!r}: use one of {', '.join(WEDGES)}")


def _angles(tilt_min: float, tilt_max: float, tilt_step: float) -> np.ndarray:
    from cryogen.tomo import tilt_angles

    try:
        return tilt_angles(tilt_min, tilt_max, tilt_step)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _reconstruct(series: torch.Tensor, angles: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Weighted back-projection of ``series`` into a volume of ``like``'s shape."""
    from cryogen.tomo import reconstruct_wbp

    nz, _, nx = like.shape
    rec = torch.as_tensor(
        reconstruct_wbp(series, angles, thickness=int(nz), width=int(nx)), dtype=torch.float32
    )
    if tuple(rec.shape) != tuple(like.shape):
        raise InputError(
            f"the reconstruction has shape {tuple(rec.shape)}, not the volume's {tuple(like.shape)}"
        )
    return rec


def _tilt_series_halves(
    volume: torch.Tensor,
    tilt_min: float,
    tilt_max: float,
    tilt_step: float,
    snr: float | None,
    dose: float | None,
    ctf_params: CTFParams | None,
    seed: int,
    voxel_size: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Even- and odd-frame tilt series of ``volume``, each reconstructed."""
    from cryogen.tomo import simulate_half_tilt_series

    angles = _angles(tilt_min, tilt_max, tilt_step)
    even, odd = simulate_half_tilt_series(
        volume,
        angles,
        pixel_size=voxel_size,
        ctf_params=ctf_params,
        dose=dose,
        snr=snr,
        seed=seed,
    )
    return _reconstruct(even, angles, volume), _reconstruct(odd, angles, volume)


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
    from cryogen.tomo import simulate_tilt_series

    angles = _angles(tilt_min, tilt_max, tilt_step)
    ts = simulate_tilt_series(volume, angles, pixel_size=voxel_size, snr=snr, seed=seed)
    return _reconstruct(ts, angles, volume)
