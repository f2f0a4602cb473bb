"""Forward projection of a volume into a single-axis tilt series.

Geometry (``shared/CONVENTIONS.md``): volumes are ``(z, y, x)``, the beam runs along ``z``
and the tilt axis is ``y``.  At tilt ``t`` the rays run along ``d = (sin t, cos t)`` in the
``(x, z)`` plane, so the image samples the central Fourier plane with normal
``(sin t, 0, cos t)`` -- the plane that :func:`cryogen.wedge.missing_wedge_mask` marks as
measured.  The image coordinate across the tilt axis is ``u = x cos t - z sin t`` (so at
``t = 0`` the image is the plain sum over ``z``, with image ``x`` = volume ``x``).  Both the
rotation centre of the volume and the centre of the image are at index ``n // 2`` along each
axis (the FFT convention).

Images are ``(n_tilts, y, u)``: the tilt axis is the image's ``y``, as in an IMOD stack.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cryogen.tomo.ctf import CTFParams, ctf_2d

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DOSE_MODEL_CONTRAST",
    "check_angles",
    "grid_coordinate",
    "project",
    "simulate_half_tilt_series",
    "simulate_tilt_series",
    "tilt_angles",
]

logger = logging.getLogger(__name__)

#: Default working-memory budget of one chunk (bytes); the projector and back-projector
#: process rows along the tilt axis in chunks of at most about this size.
DEFAULT_CHUNK_BYTES = 128 * 1024**2


def tilt_angles(tilt_min: float, tilt_max: float, tilt_step: float) -> np.ndarray:
    """Tilt angles from ``tilt_min`` to ``tilt_max`` in steps of ``tilt_step``, degrees.

    The last angle is exactly ``tilt_max``: when the range is not a multiple of the step, the
    last step is shorter (so the tilt range -- and the missing wedge -- is the one asked for).

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64, ascending.
    """
    if not (-90.0 <= tilt_min < tilt_max <= 90.0):
        raise ValueError(
            "tilt range must satisfy -90 <= tilt_min < tilt_max <= 90, "
            f"got [{tilt_min}, {tilt_max}]"
        )
    if not tilt_step > 0:
        raise ValueError(f"tilt_step must be positive, got {tilt_step}")
    n = int(math.floor((tilt_max - tilt_min) / tilt_step + 1e-9))
    angles = tilt_min + tilt_step * np.arange(n + 1, dtype=np.float64)
    if tilt_max - angles[-1] > 1e-6 * max(1.0, tilt_step):
        angles = np.append(angles, tilt_max)
    angles[-1] = tilt_max
    return angles


def check_angles(angles: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Tilt angles as a flat float64 array (degrees), or ``ValueError`` unless finite and
    within ``[-90, 90]``."""
    a = np.asarray(
        angles.detach().cpu().numpy() if isinstance(angles, torch.Tensor) else angles,
        dtype=np.float64,
    ).reshape(-1)
    if a.size == 0:
        raise ValueError("no tilt angles given")
    if not np.isfinite(a).all() or np.abs(a).max() > 90.0:
        raise ValueError("tilt angles must be finite and within [-90, 90] degrees")
    return a


def grid_coordinate(index: torch.Tensor, n: int) -> torch.Tensor:
    """Index coordinate -> grid_sample coordinate (``align_corners=True``)."""
    return index * (2.0 / (n - 1)) - 1.0


def project(
    volume: torch.Tensor,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    width: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Line integrals of ``volume`` along the beam at each tilt (a tilt series).

    Ray-driven: every image pixel sums bilinear samples of the volume taken one voxel apart
    along its ray (``torch.nn.functional.grid_sample``); rays leaving the volume see zeros.
    The tilt axis ``y`` is carried as channels, so the work is batched over ``y`` and done in
    chunks of rows of at most about ``chunk_bytes``.

    Parameters
    ----------
    volume
        ``(..., z, y, x)`` real tensor (any leading batch dimensions), ``z, x >= 2``.
    angles
        ``(n_tilts,)`` tilt angles in degrees.
    width
        Image width (pixels across the tilt axis); default ``x``.
    chunk_bytes
        Working-memory budget of one chunk of rows.

    Returns
    -------
    torch.Tensor
        ``(..., n_tilts, y, width)`` on the device and with the (floating) dtype of
        ``volume``.
    """
    if volume.ndim < 3:
        raise ValueError(f"volume must be (..., z, y, x), got shape {tuple(volume.shape)}")
    nz, ny, nx = (int(s) for s in volume.shape[-3:])
    if nz < 2 or nx < 2:
        raise ValueError(f"volume needs z, x >= 2 to be projected, got shape {tuple(volume.shape)}")
    a = check_angles(angles)
    w = nx if width is None else int(width)
    if w < 1:
        raise ValueError(f"width must be positive, got {width}")
    lead = volume.shape[:-3]
    dtype = volume.dtype if volume.is_floating_point() else torch.float32
    dev = volume.device
    # (L, z, y, x) -> (1, L*y, z, x): rows along the tilt axis become channels
    v = volume.to(dtype).reshape(-1, nz, ny, nx).permute(0, 2, 1, 3).reshape(1, -1, nz, nx)
    channels = v.shape[1]
    ns = int(math.ceil(math.hypot(nz, nx))) + 2  # samples along a ray: the whole box
    # grids are computed in float64 on the CPU (MPS has no float64), then moved
    s = torch.arange(ns, dtype=torch.float64) - (ns - 1) / 2.0
    u = torch.arange(w, dtype=torch.float64) - (w // 2)
    cx, cz = float(nx // 2), float(nz // 2)
    itemsize = torch.finfo(dtype).bits // 8
    rows = max(1, int(chunk_bytes // max(1, ns * w * itemsize * 2)))
    out = torch.empty((len(a), channels, w), device=dev, dtype=dtype)
    for i, t in enumerate(np.deg2rad(a)):
        c, sn = math.cos(t), math.sin(t)
        x = u[None, :] * c + s[:, None] * sn + cx  # (ns, w) voxel index along x
        z = -u[None, :] * sn + s[:, None] * c + cz  # (ns, w) voxel index along z
        grid = torch.stack((grid_coordinate(x, nx), grid_coordinate(z, nz)), dim=-1)[None]
        grid = grid.to(device=dev, dtype=dtype)
        for c0 in range(0, channels, rows):
            c1 = min(channels, c0 + rows)
            samples = F.grid_sample(
                v[:, c0:c1], grid, mode="bilinear", padding_mode="zeros", align_corners=True
            )  # (1, rows, ns, w)
            out[i, c0:c1] = samples[0].sum(dim=1)
    # (T, L*y, w) -> (..., T, y, w)
    out = out.reshape(len(a), -1, ny, w).permute(1, 0, 2, 3)
    return out.reshape(*lead, len(a), ny, w)


#: Image contrast of the dose model: the projections are scaled so that their standard
#: deviation is this fraction of the mean beam intensity (a weak-phase object).
DOSE_MODEL_CONTRAST = 0.1


def simulate_tilt_series(
    volume: torch.Tensor,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    pixel_size: float = 1.0,
    ctf_params: CTFParams | None = None,
    dose: float | None = None,
    snr: float | None = None,
    seed: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """A tilt series of ``volume`` as a microscope would record it (simplified).

    1. Projection (:func:`project`), images ``(n_tilts, y, x)``.
    2. Optional CTF (``ctf_params``): every image is filtered with the CTF of its defocus
       (no defocus gradient across tilted images, no astigmatism, no envelope), IsoNet's
       sign (``CTF(0) > 0``: the density keeps its sign at low frequency).
    3. Optional shot noise (``dose``, e⁻/Å² over the whole series, split evenly between the
       tilts): the projections are scaled to a contrast of :data:`DOSE_MODEL_CONTRAST`
       around a beam of ``dose / n_tilts * pixel_size^2`` electrons per pixel, Poisson counts
       are drawn and the counts are converted back to projection units.
    4. Optional Gaussian noise (``snr``): variance of the noise-free series over ``snr``,
       the same for every tilt (equal dose per tilt).

    Parameters
    ----------
    volume
        ``(z, y, x)`` density (beam along ``z``).
    angles
        ``(n_tilts,)`` degrees.
    pixel_size
        Å per voxel (used by the CTF and the dose).
    seed
        Seed of the noise (a local ``torch.Generator``; the global state is untouched).

    Returns
    -------
    torch.Tensor
        ``(n_tilts, y, x)`` float32 on the device of ``volume``.
    """
    images = _noise_free(volume, angles, pixel_size, ctf_params, dose, snr, chunk_bytes)
    gen = torch.Generator(device=images.device).manual_seed(int(seed))
    return _recorded(images, pixel_size, dose, snr, gen)


def simulate_half_tilt_series(
    volume: torch.Tensor,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    pixel_size: float = 1.0,
    ctf_params: CTFParams | None = None,
    dose: float | None = None,
    snr: float | None = None,
    seed: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The even-frame and the odd-frame tilt series of one acquisition.

    Each tilt's exposure is split into frames; summing the even frames and the odd frames
    gives two tilt series of the same specimen with independent noise: with ``dose`` each
    carries half of it (its own Poisson counts), with ``snr`` each gets Gaussian noise of
    twice the variance, so that their mean has the SNR asked for.  The noise-free images
    (projection, CTF) are those of :func:`simulate_tilt_series`.

    Returns
    -------
    tuple of torch.Tensor
        ``(even, odd)``, each ``(n_tilts, y, x)`` float32.
    """
    images = _noise_free(volume, angles, pixel_size, ctf_params, dose, snr, chunk_bytes)
    half_dose = None if dose is None else dose / 2.0
    half_snr = None if snr is None else snr / 2.0
    seeds = np.random.SeedSequence(int(seed)).generate_state(2)
    out = []
    for s in seeds:
        gen = torch.Generator(device=images.device).manual_seed(int(s))
        out.append(_recorded(images, pixel_size, half_dose, half_snr, gen))
    return out[0], out[1]


def _noise_free(
    volume: torch.Tensor,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    pixel_size: float,
    ctf_params: CTFParams | None,
    dose: float | None,
    snr: float | None,
    chunk_bytes: int,
) -> torch.Tensor:
    """Checked arguments, then the projections with the CTF applied ``(n_tilts, y, x)``."""
    if volume.ndim != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {tuple(volume.shape)}")
    if not pixel_size > 0:
        raise ValueError(f"pixel_size must be positive (Å), got {pixel_size}")
    if dose is not None and not dose > 0:
        raise ValueError(f"dose must be positive (e/Å^2), got {dose}")
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be positive, got {snr}")
    images = project(volume.to(torch.float32), angles, chunk_bytes=chunk_bytes)
    if ctf_params is not None:
        ny, nx = images.shape[1:]
        c = ctf_2d((ny, nx), pixel_size, ctf_params, device=images.device).to(torch.float32)
        images = torch.fft.irfft2(torch.fft.rfft2(images) * c, s=(ny, nx))
    return images


def _recorded(
    images: torch.Tensor,
    pixel_size: float,
    dose: float | None,
    snr: float | None,
    gen: torch.Generator,
) -> torch.Tensor:
    """Noise-free images with shot noise (``dose``) and Gaussian noise (``snr``) drawn from
    ``gen`` (steps 3 and 4 of :func:`simulate_tilt_series`)."""
    n_tilts = images.shape[0]
    std = float(images.std())
    if dose is not None:
        electrons = dose / n_tilts * pixel_size**2
        mean = float(images.mean())
        scale = DOSE_MODEL_CONTRAST / std if std > 0 else 1.0
        rate = electrons * (1.0 + (images - mean) * scale).clamp(min=0.0)
        counts = torch.poisson(rate.double(), generator=gen).float()
        images = (counts / electrons - 1.0) / scale + mean
        logger.info(
            "dose %.3g e/Å² over %d tilts: %.3g electrons per pixel and tilt",
            dose,
            n_tilts,
            electrons,
        )
    if snr is not None:
        signal_var = float(images.var()) if dose is None else std**2
        noise = torch.randn(images.shape, generator=gen, device=images.device)
        images = images + noise * math.sqrt(signal_var / snr)
    return images
