"""Additive white Gaussian noise at a given SNR, for phantoms used outside a tilt range.

For noise restricted to the measured region of a tilt range (the paper's protocol), use
:func:`cryogen.corrupt.corrupt`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cryogen.errors import InputError

__all__ = ["add_noise"]


def add_noise(volume: torch.Tensor, snr: float, *, seed: int | None = None) -> torch.Tensor:
    """Add white Gaussian noise of variance ``var(volume) / snr``.

    SNR is the signal variance (population variance of the whole tensor) over the noise
    variance.  The noise is drawn on the CPU from ``numpy.random.default_rng(seed)`` (the same
    numbers on every device) and added in the volume's dtype and device.

    Parameters
    ----------
    volume
        Tensor of any shape, e.g. ``(z, y, x)``.
    snr
        Positive; ``inf`` returns a copy.
    seed
        Seed of the noise (``None``: fresh entropy).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``volume``.
    """
    snr = float(snr)
    if math.isnan(snr) or snr <= 0:
        raise InputError(f"snr must be > 0, got {snr}")
    if not torch.is_floating_point(volume):
        raise InputError(f"volume must be a floating-point tensor, got {volume.dtype}")
    if math.isinf(snr):
        return volume.clone()
    signal_var = float(volume.detach().to(torch.float64).var(unbiased=False))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(volume.shape)) * math.sqrt(signal_var / snr)
    return volume + torch.from_numpy(noise).to(device=volume.device, dtype=volume.dtype)
