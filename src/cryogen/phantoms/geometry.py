"""Shared geometry of the phantoms: argument checks, random rotations, centred grids.

Rotations are ``(3, 3)`` proper rotation matrices drawn or applied with numpy/torch in
float64; volumes are indexed ``(z, y, x)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cryogen.errors import InputError

__all__ = [
    "Shape",
    "as_shape3",
    "centred_axes",
    "check_positive",
    "check_rotation",
    "random_rotation",
    "rotate_volume",
]

#: A cube edge or a ``(z, y, x)`` shape.
Shape = int | Sequence[int]


def as_shape3(size: Shape, name: str = "size") -> tuple[int, int, int]:
    """``size`` as a ``(z, y, x)`` tuple of positive ints."""
    dims: tuple[int, ...]
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        dims = (int(size),) * 3
    else:
        try:
            dims = tuple(int(s) for s in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InputError(f"{name} must be an int or a (z, y, x) tuple, got {size!r}") from None
    if len(dims) != 3 or any(d < 1 for d in dims):
        raise InputError(f"{name} must be a positive int or (z, y, x) tuple, got {size!r}")
    return dims  # type: ignore[return-value]


def check_positive(value: float, name: str) -> float:
    """``value`` as a float, or ``InputError`` naming ``name`` unless positive and finite."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value}")
    return value


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed proper rotation ``(3, 3)`` (normalised Gaussian quaternion).

    Draws four standard normals from ``rng``, so successive calls on one generator give a
    reproducible sequence of rotations.
    """
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def check_rotation(rotation: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    """``rotation`` as a float64 ``(3, 3)`` array, or ``InputError`` unless proper."""
    r = np.asarray(
        rotation.detach().cpu() if isinstance(rotation, torch.Tensor) else rotation,
        dtype=np.float64,
    )
    if r.shape != (3, 3):
        raise InputError(f"rotation must be a 3x3 matrix, got shape {r.shape}")
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
        raise InputError("rotation must be a proper rotation matrix (orthogonal, det +1)")
    return r


def rotate_volume(volume: torch.Tensor, rotation: np.ndarray) -> torch.Tensor:
    """Rotate a cubic volume about its centre ``(n - 1) / 2`` (trilinear, zeros outside).

    Parameters
    ----------
    volume
        ``(n, n, n)`` tensor.
    rotation
        ``(3, 3)`` proper rotation (acting on normalised grid coordinates).

    Returns
    -------
    torch.Tensor
        ``(n, n, n)``, same dtype and device.
    """
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"rotate_volume needs a cubic (n, n, n) volume, got {tuple(volume.shape)}")
    theta = torch.zeros(1, 3, 4, dtype=torch.float32, device=volume.device)
    theta[0, :, :3] = torch.as_tensor(rotation, dtype=torch.float32)
    x = volume[None, None].to(torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0, 0].to(volume.dtype)


def centred_axes(shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """Voxel-centre coordinates along z, y, x relative to the volume centre ``(n - 1) / 2``."""
    return [torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0 for n in shape]
