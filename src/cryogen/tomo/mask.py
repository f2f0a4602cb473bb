"""Sampling masks of tomograms, as IsoNet's ``make_mask`` builds them.

A mask marks where the specimen is, so that training subtomograms are cut there and not in
empty ice.  As in IsoNet, the tomogram is binned by 2 and smoothed with a Gaussian of
standard deviation ``patch_size / 2`` voxels, then two criteria are combined (both must
hold):

- density: the local extreme of the density over a cube of edge ``2 * patch_size + 1``
  (a maximum filter) is among the densest ``density_percentage`` % of the tomogram;
- local standard deviation over the same cube is among the highest ``std_percentage`` %.

A percentage of 100 (IsoNet: above 99.8) switches its criterion off.  ``z_crop`` then
removes a fraction of the slices along the beam, half at the top and half at the bottom
(IsoNet2: ``z_crop 0.2`` masks the top 10 % and the bottom 10 %).

Cryo-ET tomograms show protein **dark** (low values), which is IsoNet's assumption and the
default here; cryogen's phantoms and simulated tilt series show it **bright**
(``protein="bright"``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cryogen.errors import InputError

__all__ = ["make_mask", "gaussian_blur3d", "local_std"]

logger = logging.getLogger(__name__)


def gaussian_blur3d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(z, y, x)`` tensor (reflected edges); ``sigma`` in voxels."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = x[None, None]
    for dim in range(3):
        n = out.shape[2 + dim]
        r = min(radius, n - 1)
        kk = k[radius - r : radius + r + 1]
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = kk.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = r
        pad[2 * (2 - dim) + 1] = r
        if r > 0:
            out = F.conv3d(F.pad(out, pad, mode="reflect"), kk.reshape(shape))
    return out[0, 0]


def local_std(x: torch.Tensor, size: int) -> torch.Tensor:
    """Standard deviation over a cube of edge ``size`` (odd) around every voxel of ``(z, y, x)``;
    near the edges only the voxels inside the volume count."""
    pad = size // 2
    xx = x.to(torch.float32)
    xx = (xx - xx.mean())[None, None]  # centred: E[x^2] - E[x]^2 in float32 stays accurate
    mean = F.avg_pool3d(xx, size, stride=1, padding=pad, count_include_pad=False)
    mean2 = F.avg_pool3d(xx * xx, size, stride=1, padding=pad, count_include_pad=False)
    return torch.sqrt((mean2 - mean * mean).clamp(min=0.0))[0, 0].to(x.dtype)


def _bin2(volume: Any, device: torch.device | str | None) -> torch.Tensor:
    """Mean of 2x2x2 blocks of a ``(z, y, x)`` tensor or array (odd sizes: the last block is
    completed by replication), computed in slabs along ``z``."""
    nz, ny, nx = (int(s) for s in volume.shape)
    if device is None:
        device = volume.device if isinstance(volume, torch.Tensor) else "cpu"
    mz, my, mx = (nz + 1) // 2, (ny + 1) // 2, (nx + 1) // 2
    out = torch.empty((mz, my, mx), dtype=torch.float32, device=device)
    step = 32  # even number of slices per slab
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        if isinstance(volume, torch.Tensor):
            slab = volume[z0:z1].to(device=device, dtype=torch.float32)
        else:
            slab = torch.from_numpy(np.array(volume[z0:z1], dtype=np.float32)).to(device)
        pads = [0, nx % 2, 0, ny % 2, 0, (z1 - z0) % 2]
        slab = slab[None, None]
        if any(pads):
            slab = F.pad(slab, pads, mode="replicate")
        out[z0 // 2 : z0 // 2 + slab.shape[2] // 2] = F.avg_pool3d(slab, 2)[0, 0]
    return out


def _top_percent(x: torch.Tensor, percentage: float) -> torch.Tensor:
    """Boolean mask of the voxels above the ``100 - percentage`` percentile of ``x``."""
    if percentage >= 100.0:
        return torch.ones_like(x, dtype=torch.bool)
    if percentage <= 0.0:
        return torch.zeros_like(x, dtype=torch.bool)
    flat = x.reshape(-1)
    k = int(round((1.0 - percentage / 100.0) * (flat.numel() - 1))) + 1
    threshold = torch.kthvalue(flat.cpu(), max(1, min(k, flat.numel()))).values.to(x.device)
    return x > threshold


def make_mask(
    volume: torch.Tensor | np.ndarray,
    *,
    density_percentage: float = 50.0,
    std_percentage: float = 50.0,
    z_crop: float = 0.2,
    patch_size: int = 4,
    protein: str = "dark",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """IsoNet-style sampling mask of a tomogram.

    Parameters
    ----------
    volume
        ``(z, y, x)`` tomogram (beam along ``z``): a tensor, or a numpy array / memory map
        (binned by slabs, so only the binned copy is held in memory).
    density_percentage
        Percentage of voxels kept by the density criterion (IsoNet default 50; 100 = off).
    std_percentage
        Percentage kept by the local-standard-deviation criterion (default 50; 100 = off).
    z_crop
        Fraction of the slices along ``z`` removed, half at each end, in ``[0, 1)``.
    patch_size
        Half-width of the local filters, in binned voxels (IsoNet default 4).
    protein
        ``"dark"`` (cryo-ET tomograms, IsoNet) or ``"bright"`` (phantoms, simulations).
    device
        Where to compute (default: the tensor's device, the CPU for arrays).

    Returns
    -------
    torch.Tensor
        ``(z, y, x)`` ``uint8`` mask (1 = sample here) on ``device``.
    """
    if getattr(volume, "ndim", 0) != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {tuple(volume.shape)}")
    for name, p in (("density_percentage", density_percentage), ("std_percentage", std_percentage)):
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"{name} must be in [0, 100], got {p}")
    if not 0.0 <= z_crop < 1.0:
        raise ValueError(f"z_crop must be in [0, 1), got {z_crop}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    if protein not in ("dark", "bright"):
        raise ValueError(f"protein must be 'dark' or 'bright', got {protein!r}")
    nz, ny, nx = (int(s) for s in volume.shape)
    binned = _bin2(volume, device)
    size = 2 * patch_size + 1
    if size > min(binned.shape):
        raise InputError(
            f"patch_size {patch_size} is too large for a tomogram of {(nz, ny, nx)}: its "
            f"filters span {size} voxels of the 2x-binned tomogram {tuple(binned.shape)}; "
            f"use at most {max(1, (min(binned.shape) - 1) // 2)}"
        )
    g = gaussian_blur3d(binned, patch_size / 2.0)
    keep = torch.ones_like(g, dtype=torch.bool)
    if density_percentage < 100.0:
        dens = -g if protein == "dark" else g
        local_max = F.max_pool3d(dens[None, None], size, stride=1, padding=patch_size)[0, 0]
        keep &= _top_percent(local_max, density_percentage)
    if std_percentage < 100.0:
        keep &= _top_percent(local_std(g, size), std_percentage)
    out = torch.empty((nz, ny, nx), dtype=torch.uint8, device=keep.device)
    for z0 in range(0, nz, 64):  # upsample by 2 (nearest) in slabs
        z1 = min(nz, z0 + 64)
        part = keep[z0 // 2 : (z1 + 1) // 2].to(torch.uint8)
        part = part.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
        out[z0:z1] = part[: z1 - z0, :ny, :nx]
    cut = int(round(nz * z_crop / 2.0))
    if cut > 0:
        out[:cut] = 0
        out[nz - cut :] = 0
    logger.info("mask covers %.1f%% of the tomogram", 100.0 * float(out.float().mean()))
    return out
