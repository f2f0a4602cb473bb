"""Copies to and from memory-mapped arrays that keep the resident set bounded.

Memory-mapped pages that a streaming pass has finished with are handed back to the kernel
(``madvise(MADV_DONTNEED)``; the data stay in the page cache), so the resident set stays
bounded while a tomogram larger than the memory is read and written.
"""

from __future__ import annotations

import mmap
from contextlib import suppress
from typing import Any

import numpy as np
import torch

__all__ = [
    "TOUCH_BYTES",
    "as_array",
    "chunks_along_outer_axis",
    "read_bounded",
    "release",
    "write_bounded",
]

#: Bytes of a memory-mapped file that a bounded copy touches before handing pages back.
TOUCH_BYTES = 64 * 1024**2


def as_array(volume: Any) -> np.ndarray:
    """A numpy view of an array, memory map or (CPU or GPU) tensor; no copy where possible."""
    if isinstance(volume, torch.Tensor):
        return volume.detach().cpu().numpy()
    return volume if isinstance(volume, np.ndarray) else np.asarray(volume)


def release(*arrays: Any) -> None:
    """Drop the resident pages of memory-mapped arrays from this process (Linux ``madvise``).

    Only shared mappings (``numpy.memmap`` modes ``r``, ``r+``, ``w+``) are touched: their
    data stay in the page cache (dirty pages are still written back), so later reads see
    them; the pages just stop counting in the resident set.  Anything else is ignored.
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # pragma: no cover - not Linux/BSD
        return
    for arr in arrays:
        mm = getattr(arr, "_mmap", None)
        if mm is None or getattr(arr, "mode", None) not in ("r", "r+", "w+"):
            continue
        with suppress(AttributeError, ValueError, OSError):
            mm.madvise(advice)


def chunks_along_outer_axis(view: np.ndarray) -> list[tuple[slice, ...]]:
    """Index tuples that split ``view`` along its slowest-varying axis in memory (largest
    stride) into pieces spanning about :data:`TOUCH_BYTES` of the underlying buffer.

    A slab of a ``(z, y, x)`` file cut along ``y`` touches every ``z`` plane; the kernel may
    map whole page-cache folios around each access, so the copy is done plane group by plane
    group with the pages released in between.
    """
    if view.ndim == 0 or view.size == 0:
        return [()]
    k = int(np.argmax([abs(st) for st in view.strides]))
    step = max(1, TOUCH_BYTES // max(1, abs(view.strides[k])))
    n = view.shape[k]
    head = (slice(None),) * k
    return [(*head, slice(i, min(n, i + step))) for i in range(0, n, step)]


def read_bounded(view: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """An in-memory copy of ``view`` (a memory map or a view of one), touching at most about
    :data:`TOUCH_BYTES` of the mapping before its pages are released."""
    out = np.empty(view.shape, dtype=dtype)
    for idx in chunks_along_outer_axis(view):
        out[idx] = view[idx]
        release(view)
    return out


def write_bounded(view: np.ndarray, data: np.ndarray) -> None:
    """``view[...] = data`` for a memory-mapped ``view``, releasing pages every
    :data:`TOUCH_BYTES` of the mapping."""
    for idx in chunks_along_outer_axis(view):
        view[idx] = data[idx]
        release(view)
