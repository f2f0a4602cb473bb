"""Input checks shared by the metrics: float64 copies, matching shapes, data range."""

from __future__ import annotations

import math

import numpy as np
import torch

from cryogen.errors import InputError

__all__ = ["ArrayLike", "as_float64", "as_pair", "resolve_data_range"]

#: What every metric accepts: a numpy array or a torch tensor (any device, any real dtype).
ArrayLike = np.ndarray | torch.Tensor


def as_float64(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a float64 numpy array (a copy for tensors), rejecting NaN/inf."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise InputError(f"{name} must be real, got a complex tensor of shape {tuple(x.shape)}")
        arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        arr = np.asarray(x)
        if np.iscomplexobj(arr):
            raise InputError(f"{name} must be real, got a complex array of shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} of shape {arr.shape} contains NaN or infinite values")
    return arr


def as_pair(
    pred: ArrayLike, gt: ArrayLike, names: tuple[str, str] = ("pred", "gt"), ndim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 arrays (:func:`as_float64`) of one shape (and ``ndim`` if given)."""
    a = as_float64(pred, names[0])
    b = as_float64(gt, names[1])
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} and {names[1]} must have the same shape, got {names[0]} {a.shape} "
            f"and {names[1]} {b.shape}"
        )
    if ndim is not None and a.ndim != ndim:
        raise InputError(f"expected {ndim}-D volumes (z, y, x), got shape {a.shape}")
    return a, b


def resolve_data_range(gt: np.ndarray, data_range: float | None) -> float:
    """SSIM's ``L``: ``data_range`` if given (positive, finite), else ``max(gt) - min(gt)``."""
    if data_range is None:
        L = float(gt.max() - gt.min())
        if L <= 0:
            raise ValueError(
                f"gt of shape {gt.shape} is constant ({float(gt.flat[0])}): its range "
                "max(gt) - min(gt) is 0, pass data_range explicitly"
            )
        return L
    L = float(data_range)
    if not (L > 0 and math.isfinite(L)):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return L
