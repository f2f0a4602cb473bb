"""Intensity normalisation of a model's data: ``x -> (x - mean) / std`` over the training
volumes, stored in every checkpoint and applied again at prediction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cryogen.errors import InputError

__all__ = ["Normalisation", "as_numpy", "compute_normalisation"]

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Normalisation:
    """``x -> (x - mean) / std`` and its inverse."""

    mean: float
    std: float

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Normalisation:
        return cls(float(d["mean"]), float(d["std"]))


def as_numpy(v: ArrayLike) -> np.ndarray:
    """A numpy view (or copy, for a GPU tensor) of an array, memory map or tensor."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def compute_normalisation(volumes: Sequence[ArrayLike], *, enabled: bool = True) -> Normalisation:
    """Mean and standard deviation over every voxel of every volume (float64, by slabs).

    Parameters
    ----------
    volumes
        Volumes ``(z, y, x)`` (arrays, memory maps or tensors).
    enabled
        ``False`` returns the identity ``Normalisation(0, 1)``.
    """
    if not enabled:
        return Normalisation(0.0, 1.0)
    total, s1, s2 = 0, 0.0, 0.0
    for v in volumes:
        a = as_numpy(v)
        for z0 in range(0, a.shape[0], 16):  # slabs: memory-mapped tomograms stay on disk
            slab = np.asarray(a[z0 : z0 + 16], dtype=np.float64)
            total += slab.size
            s1 += float(slab.sum())
            s2 += float(np.square(slab).sum())
    mean = s1 / total
    var = max(s2 / total - mean * mean, 0.0)
    std = float(np.sqrt(var))
    if not std > 1e-12 or not np.isfinite(std):
        raise InputError("the training data are constant (standard deviation 0); nothing to learn")
    return Normalisation(float(mean), std)
