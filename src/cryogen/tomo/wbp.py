"""Weighted back-projection (WBP) of a single-axis tilt series.

Geometry as in :mod:`cryogen.tomo.project`: the tilt axis is ``y`` (the images' rows), the
reconstruction is ``(thickness, y, width)`` with the beam along ``z``, and voxel ``(z, x)``
(relative to the centre ``n // 2``) is seen at ``u = x cos t - z sin t`` in the image of
tilt ``t``.  Each image row is

1. weighted by the radial (ramp, Ram-Lak) filter ``|k|`` along ``u``, built from its
   band-limited spatial kernel (``h(0) = 1/4``, ``h(n) = -1/(pi n)^2`` for odd ``n``) so that
   the zero frequency is weighted correctly, with zero padding to avoid wrap-around;
2. multiplied by the angular interval it stands for (half the distance to its neighbours,
   radians), so uneven tilt schemes are weighted correctly and the result is on the scale of
   the object (the ray-sum projector of :func:`cryogen.tomo.project` is its model);
3. smeared back along its rays with linear interpolation.

Every row along the tilt axis is independent, so the reconstruction is produced in chunks of
rows (:func:`iter_wbp_chunks`): memory is bounded by the chunk size, not by the tomogram's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cryogen.tomo.project import DEFAULT_CHUNK_BYTES, check_angles, grid_coordinate

__all__ = [
    "ramp_filter",
    "tilt_weights",
    "weight_projections",
    "backproject",
    "iter_wbp_chunks",
    "rows_per_chunk",
    "reconstruct_wbp",
]

logger = logging.getLogger(__name__)


def _padded_length(n: int) -> int:
    return 1 << max(6, int(math.ceil(math.log2(2 * n))))


def ramp_filter(
    n_padded: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Ram-Lak filter on the ``rfft`` grid of ``n_padded`` samples: ``(n_padded // 2 + 1,)``.

    It is the DFT of the band-limited ramp kernel sampled on ``n_padded`` points, i.e. ``|k|``
    (cycles per pixel) up to Nyquist with the small, correct weight at ``k = 0``.
    """
    if n_padded < 2:
        raise ValueError(f"n_padded must be >= 2, got {n_padded}")
    idx = torch.arange(n_padded, dtype=torch.float64)
    idx = torch.where(idx > n_padded // 2, idx - n_padded, idx)  # signed offsets
    h = torch.zeros(n_padded, dtype=torch.float64)
    h[0] = 0.25
    odd = (idx.remainder(2) == 1) | (idx.remainder(2) == -1)
    h[odd] = -1.0 / (math.pi * idx[odd]) ** 2
    return torch.fft.rfft(h).real.to(device=device, dtype=dtype)


def tilt_weights(angles: Sequence[float] | np.ndarray) -> np.ndarray:
    """Angular interval (radians) each tilt stands for: half the gap to each neighbour.

    The first and last tilts get half their one gap on the inside plus as much on the
    outside (the tilt scheme's own spacing).  A single tilt gets ``pi``.

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64, in the order of ``angles``.
    """
    a = np.deg2rad(check_angles(angles))
    if a.size == 1:
        return np.array([math.pi])
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def weight_projections(images: torch.Tensor) -> torch.Tensor:
    """Ramp-filter images along their last axis (``u``, across the tilt axis).

    Parameters
    ----------
    images
        ``(..., w)`` real tensor (e.g. ``(n_tilts, rows, w)``).

    Returns
    -------
    torch.Tensor
        Same shape, filtered with :func:`ramp_filter` after zero padding to at least ``2 w``.
    """
    w = images.shape[-1]
    n = _padded_length(w)
    x = images if images.is_floating_point() else images.to(torch.float32)
    filt = ramp_filter(n, device=x.device, dtype=x.dtype)
    spec = torch.fft.rfft(x, n=n, dim=-1)
    return torch.fft.irfft(spec * filt, n=n, dim=-1)[..., :w]


def _backproject_rows(
    weighted: torch.Tensor, angles_rad: np.ndarray, factors: np.ndarray, nz: int, nx: int
) -> torch.Tensor:
    """``weighted`` ``(T, rows, w)`` -> ``(rows, nz, nx)``: sum of smeared rows times factors."""
    n_tilts, rows, w = weighted.shape
    dev, dtype = weighted.device, weighted.dtype
    # grids in float64 on the CPU (MPS has no float64), then moved
    x = torch.arange(nx, dtype=torch.float64) - (nx // 2)
    z = torch.arange(nz, dtype=torch.float64) - (nz // 2)
    acc = torch.zeros((rows, nz, nx), device=dev, dtype=dtype)
    zeros = torch.zeros((nz, nx), dtype=torch.float64)
    for i in range(n_tilts):
        c, s = math.cos(angles_rad[i]), math.sin(angles_rad[i])
        u = x[None, :] * c - z[:, None] * s + (w // 2)  # (nz, nx) image index
        gu = grid_coordinate(u, w)
        grid = torch.stack((gu, zeros), dim=-1)[None].to(device=dev, dtype=dtype)  # (1, nz, nx, 2)
        smear = F.grid_sample(
            weighted[i][None, :, None, :],  # (1, rows, 1, w)
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )[0]  # (rows, nz, nx)
        acc.add_(smear, alpha=float(factors[i]))
    return acc


def backproject(
    images: torch.Tensor,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    thickness: int,
    *,
    width: int | None = None,
) -> torch.Tensor:
    """Plain (unweighted) back-projection: smear each image back along its rays and sum.

    Parameters
    ----------
    images
        ``(n_tilts, y, w)``.
    angles
        ``(n_tilts,)`` degrees.
    thickness
        Output size along ``z``.
    width
        Output size along ``x`` (default ``w``).

    Returns
    -------
    torch.Tensor
        ``(thickness, y, width)``.
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (n_tilts, y, w), got shape {tuple(images.shape)}")
    a = check_angles(angles)
    if len(a) != images.shape[0]:
        raise ValueError(f"{len(a)} angles for {images.shape[0]} images")
    nx = images.shape[-1] if width is None else int(width)
    x = images if images.is_floating_point() else images.to(torch.float32)
    vol = _backproject_rows(x, np.deg2rad(a), np.ones(len(a)), int(thickness), nx)
    return vol.permute(1, 0, 2).contiguous()


def rows_per_chunk(
    thickness: int, width: int, n_tilts: int, image_width: int, chunk_bytes: int, itemsize: int = 4
) -> int:
    """Rows along the tilt axis per chunk so that one chunk's working set fits ``chunk_bytes``.

    The working set of one row is the accumulator, one smeared tilt and the permuted copy
    (``3 * thickness * width``) plus the row of every padded, weighted image.
    """
    per_row = itemsize * (3 * thickness * width + 3 * n_tilts * _padded_length(image_width))
    return max(1, int(chunk_bytes // per_row))


def iter_wbp_chunks(
    tilt_series: Any,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    thickness: int | None = None,
    width: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Reconstruct by WBP, yielding the tomogram in chunks of rows along the tilt axis.

    Parameters
    ----------
    tilt_series
        ``(n_tilts, y, w)`` numpy array, memory map or tensor; only the rows of the current
        chunk are read.
    angles
        ``(n_tilts,)`` degrees, in the order of the images.
    thickness
        Size of the tomogram along the beam ``z`` (default ``w``).
    width
        Size along ``x`` (default ``w``).
    chunk_bytes
        Working-memory budget of one chunk.
    device
        Where to compute.

    Yields
    ------
    (rows, block)
        ``rows`` a slice of ``y``; ``block`` the tomogram's ``(thickness, rows, width)`` float32
        part on ``device``.
    """
    if tilt_series.ndim != 3:
        raise ValueError(
            f"tilt series must be (n_tilts, y, w), got shape {tuple(tilt_series.shape)}"
        )
    n_tilts, ny, w = (int(s) for s in tilt_series.shape)
    a = check_angles(angles)
    if len(a) != n_tilts:
        raise ValueError(f"{len(a)} tilt angles for a tilt series of {n_tilts} images")
    if w < 2:
        raise ValueError(
            f"tilt images must be at least 2 pixels wide, got shape {(n_tilts, ny, w)}"
        )
    nz = w if thickness is None else int(thickness)
    nx = w if width is None else int(width)
    if nz < 1 or nx < 1:
        raise ValueError(f"thickness and width must be positive, got {nz} and {nx}")
    factors = tilt_weights(a)
    rad = np.deg2rad(a)
    rows = rows_per_chunk(nz, nx, n_tilts, w, chunk_bytes)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        if isinstance(tilt_series, torch.Tensor):
            part = tilt_series[:, y0:y1].to(device=device, dtype=torch.float32)
        else:
            part = torch.from_numpy(np.array(tilt_series[:, y0:y1], dtype=np.float32)).to(device)
        weighted = weight_projections(part)
        block = _backproject_rows(weighted, rad, factors, nz, nx)  # (rows, nz, nx)
        yield slice(y0, y1), block.permute(1, 0, 2)


def reconstruct_wbp(
    tilt_series: Any,
    angles: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    thickness: int | None = None,
    width: int | None = None,
    out: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Weighted back-projection of a tilt series into a ``(thickness, y, width)`` tomogram.

    Parameters
    ----------
    tilt_series
        ``(n_tilts, y, w)`` array, memory map or tensor.
    angles
        ``(n_tilts,)`` degrees.
    thickness, width
        Output size along ``z`` and ``x`` (default ``w`` both): e.g. ``(150, 512, 512)``.
    out
        Optional writable ``(thickness, y, width)`` array (e.g. a memory-mapped MRC) filled
        chunk by chunk; then the tomogram is never held in memory.
    chunk_bytes
        Working-memory budget of one chunk of rows.
    device
        Compute device (default: the tensor's device, else the CPU).
    progress
        Called with ``(rows done, rows in all)`` after each chunk.

    Returns
    -------
    torch.Tensor or array
        The tomogram: a float32 tensor on ``device`` when ``out`` is ``None``, else ``out``.
    """
    if device is None:
        device = tilt_series.device if isinstance(tilt_series, torch.Tensor) else "cpu"
    n_tilts, ny, w = (int(s) for s in tilt_series.shape)
    nz = w if thickness is None else int(thickness)
    nx = w if width is None else int(width)
    if out is None:
        result: Any = torch.empty((nz, ny, nx), device=device, dtype=torch.float32)
    else:
        if tuple(int(s) for s in out.shape) != (nz, ny, nx):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(nz, ny, nx)}")
        result = out
    for rows, block in iter_wbp_chunks(
        tilt_series,
        angles,
        thickness=nz,
        width=nx,
        chunk_bytes=chunk_bytes,
        device=device,
    ):
        if isinstance(result, torch.Tensor):
            result[:, rows] = block.to(result.device)
        else:
            result[:, rows] = block.cpu().numpy()
        if progress is not None:
            progress(rows.stop, ny)
    return result
