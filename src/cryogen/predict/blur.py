"""A Gaussian blur of a volume in place, in bounded memory (memory maps included)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from cryogen.errors import InputError
from cryogen.predict.bounded_io import as_array, release

__all__ = ["TRUNCATE", "blur_in_place", "blur_radius", "blurred"]

#: Truncation of the Gaussian, in sigmas (scipy's default).
TRUNCATE = 4.0


def blur_radius(sigma: float) -> int:
    """Voxels a Gaussian of ``sigma`` reaches (scipy's truncation)."""
    return int(TRUNCATE * float(sigma) + 0.5)


def blur_in_place(volume: np.ndarray, sigma: float, *, slab: int = 32) -> None:
    """Gaussian blur of ``volume`` (writable array or memory map) in place, slab by slab
    along axis 0, in memory bounded by about ``slab + 2 * radius`` planes; the same values
    as ``scipy.ndimage.gaussian_filter(volume, sigma, mode="nearest")`` on the whole
    array."""
    if sigma < 0:
        raise InputError(f"the blur's sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return
    arr = as_array(volume)
    n = int(arr.shape[0])
    r = blur_radius(sigma)
    slab = max(int(slab), r, 1)  # the planes kept from the last slab are still original
    tail = np.empty((0, *arr.shape[1:]), dtype=np.float64)  # original planes [i0 - r, i0)
    for i0 in range(0, n, slab):
        i1 = min(i0 + slab, n)
        ahead = np.asarray(arr[i0 : min(i1 + r, n)], dtype=np.float64)
        block = np.concatenate([tail, ahead], axis=0)
        lo = tail.shape[0]
        for ax in (1, 2):
            block = gaussian_filter1d(block, sigma, axis=ax, mode="nearest", truncate=TRUNCATE)
        # along axis 0 the block ends at the volume's ends (where "nearest" is the volume's
        # own boundary) or r planes of context away from the planes kept
        out = gaussian_filter1d(block, sigma, axis=0, mode="nearest", truncate=TRUNCATE)
        keep_tail = np.asarray(arr[max(i1 - r, 0) : i1], dtype=np.float64)
        arr[i0:i1] = out[lo : lo + (i1 - i0)].astype(arr.dtype, copy=False)
        release(arr)
        tail = keep_tail


def blurred(volume: np.ndarray, sigma: float) -> np.ndarray:
    """A float32 copy of ``volume`` blurred as :func:`blur_in_place` does."""
    out = np.array(volume, dtype=np.float32, copy=True)
    blur_in_place(out, sigma)
    return out
