"""Filters that need no training, as reference rows of a benchmark: what a method must beat.

On noisy data a network that loses to a Gaussian blur has learned nothing; the benchmark
therefore reports, beside every noisy case, the best Gaussian blur of the input, its width
chosen with the truth (an advantage no method has).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["BLUR_SIGMAS", "best_gaussian_blur", "gaussian_blur"]

#: The widths the best blur is chosen from, voxels (standard deviation of the Gaussian).
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)


def gaussian_blur(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """A volume ``(z, y, x)`` filtered with an isotropic Gaussian of ``sigma`` voxels.

    Applied in Fourier space (periodic boundaries): multiplied by
    ``exp(-2 pi^2 sigma^2 |k|^2)``, ``k`` in cycles per voxel.  Same shape, float32.
    """
    if volume.ndim != 3:
        raise ValueError(f"expected a volume (z, y, x), got shape {tuple(volume.shape)}")
    x = volume.to(torch.float64)
    nz, ny, nx = x.shape
    kz = torch.fft.fftfreq(nz, dtype=torch.float64)[:, None, None]
    ky = torch.fft.fftfreq(ny, dtype=torch.float64)[None, :, None]
    kx = torch.fft.rfftfreq(nx, dtype=torch.float64)[None, None, :]
    h = torch.exp(-2.0 * math.pi**2 * sigma**2 * (kz**2 + ky**2 + kx**2))
    return torch.fft.irfftn(torch.fft.rfftn(x) * h, s=(nz, ny, nx)).to(torch.float32)


def best_gaussian_blur(
    volumes: Sequence[torch.Tensor],
    truths: Sequence[torch.Tensor],
    sigmas: Sequence[float] = BLUR_SIGMAS,
) -> tuple[float, list[torch.Tensor]]:
    """The Gaussian blur of ``volumes`` that scores best against ``truths``.

    One width for all volumes: the one with the highest mean PSNR after the least-squares
    scale fit (as every benchmark row is scored).

    Returns
    -------
    sigma : float
        The chosen width, voxels.
    blurred : list of torch.Tensor
        The volumes blurred with it.
    """
    from cryogen.metrics import apply_scale_fit, psnr

    best: tuple[float, float, list[torch.Tensor]] | None = None
    for sigma in sigmas:
        blurred = [gaussian_blur(v, sigma) for v in volumes]
        score = float(
            np.mean([psnr(apply_scale_fit(b, t), t) for b, t in zip(blurred, truths, strict=True)])
        )
        if best is None or score > best[0]:
            best = (score, float(sigma), blurred)
    assert best is not None
    return best[1], best[2]
