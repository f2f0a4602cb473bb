"""Binning by Fourier cropping (to a factor or to a target pixel size).

Cropping the discrete Fourier transform keeps every frequency below the new Nyquist
exactly and removes the rest (an ideal low-pass, no aliasing), unlike averaging blocks of
voxels.  The DFT is separable, so the crop is done one axis at a time: the result is the
same as cropping the full ``n``-dimensional spectrum, and large volumes can be binned by
slabs (:func:`bin_volume`) without holding their whole spectrum.

Values are scaled by ``m / n`` per axis so that the mean (the DC term per voxel) is kept:
binning a constant volume returns the same constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["fourier_crop", "binned_shape", "bin_factor_for", "bin_volume"]


def _crop_axis(x: torch.Tensor, dim: int, m: int) -> torch.Tensor:
    n = x.shape[dim]
    if m == n:
        return x
    if not 1 <= m <= n:
        raise ValueError(f"cannot Fourier-crop an axis of {n} samples to {m} (need 1 <= m <= n)")
    spec = torch.fft.fft(x, dim=dim)
    pos = (m + 1) // 2  # frequencies 0 .. pos-1
    neg = m // 2  # frequencies -neg .. -1 (for even m, -m/2 is the new Nyquist)
    idx = torch.cat((torch.arange(pos, device=x.device), torch.arange(n - neg, n, device=x.device)))
    kept = spec.index_select(dim, idx)
    return torch.fft.ifft(kept, dim=dim).real * (m / n)


def fourier_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Fourier-crop the last ``len(shape)`` dimensions of ``x`` to ``shape``.

    Parameters
    ----------
    x
        ``(..., n1, ..., nd)`` real tensor.
    shape
        ``(m1, ..., md)`` with ``1 <= mi <= ni``.

    Returns
    -------
    torch.Tensor
        ``(..., m1, ..., md)``, same device, floating dtype of ``x`` (float32 for integers).
        Frequencies ``|k| < min(mi) / 2`` (in cycles per box) are those of ``x``, scaled by
        ``prod(mi / ni)``; the mean is kept.
    """
    d = len(shape)
    if d == 0 or x.ndim < d:
        raise ValueError(f"cannot crop a tensor of shape {tuple(x.shape)} to {tuple(shape)}")
    out = x if x.is_floating_point() else x.to(torch.float32)
    dtype = out.dtype
    compute = out.to(torch.float64) if dtype == torch.float64 else out.to(torch.float32)
    for i, m in enumerate(shape):
        compute = _crop_axis(compute, x.ndim - d + i, int(m))
    return compute.to(dtype)


def binned_shape(shape: Sequence[int], factor: float) -> tuple[int, ...]:
    """``round(n / factor)`` per axis (at least 1)."""
    if not (math.isfinite(factor) and factor >= 1.0):
        raise ValueError(f"the binning factor must be >= 1, got {factor}")
    return tuple(max(1, int(round(int(n) / factor))) for n in shape)


def bin_factor_for(pixel_size: float, target_pixel_size: float) -> float:
    """The binning factor that takes ``pixel_size`` to ``target_pixel_size`` (both Å)."""
    if not (pixel_size > 0 and target_pixel_size > 0):
        raise ValueError(
            f"pixel sizes must be positive, got {pixel_size} and {target_pixel_size} Å"
        )
    if target_pixel_size < pixel_size * (1 - 1e-6):
        raise ValueError(
            f"the target pixel size {target_pixel_size:g} Å is smaller than the data's "
            f"{pixel_size:g} Å; Fourier cropping only bins (makes pixels larger)"
        )
    return max(1.0, target_pixel_size / pixel_size)


def bin_volume(
    volume: Any,
    factor: float,
    *,
    slab_bytes: int = 64 * 1024**2,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, float]:
    """Fourier-bin a ``(z, y, x)`` array (e.g. a memory map) by ``factor``, slab by slab.

    ``y`` and ``x`` are cropped in slabs along ``z`` (each about ``slab_bytes``), then ``z`` in
    slabs along ``y`` of the (already smaller) intermediate.  Peak memory is the output plus
    the intermediate (``1 / factor^2`` of the input) plus one slab.

    Returns
    -------
    (binned, actual_factor)
        ``(mz, my, mx)`` float32 array and the factor actually applied along ``x``
        (``nx / mx``), by which the voxel size grows.
    """
    shape = tuple(int(s) for s in volume.shape)
    if len(shape) != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {shape}")
    mz, my, mx = binned_shape(shape, factor)
    nz, ny, nx = shape
    mid = np.empty((nz, my, mx), dtype=np.float32)
    step = max(1, slab_bytes // max(1, ny * nx * 8))
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        slab = torch.from_numpy(np.array(volume[z0:z1], dtype=np.float32)).to(device)
        mid[z0:z1] = fourier_crop(slab, (my, mx)).cpu().numpy()
    out = np.empty((mz, my, mx), dtype=np.float32)
    step = max(1, slab_bytes // max(1, nz * mx * 8))
    for y0 in range(0, my, step):
        y1 = min(my, y0 + step)
        slab = torch.from_numpy(np.ascontiguousarray(mid[:, y0:y1])).to(device)
        out[:, y0:y1] = _crop_axis(slab, 0, mz).cpu().numpy()
    return out, nx / mx
