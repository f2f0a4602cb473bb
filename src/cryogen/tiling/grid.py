"""The tile grid: where the tiles of a volume start, how they are weighted, how a volume
shorter than a tile is padded.

A volume ``(n0, n1, n2)`` is covered by cubic tiles of edge ``roi`` that overlap by at least
``overlap`` voxels.  Each tile's weight is a product of three 1D profiles that taper
smoothly (raised cosine) inside the overlaps and stay at 1 at the volume's faces, so that
blending has no seams and an identity predictor returns its input.  The grid is a Cartesian
product, so the summed weights are a product of three 1D sums (:attr:`TileGrid.norms`):
normalising never needs a volume of weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "MODES",
    "SlabPatches",
    "Tile",
    "TileGrid",
    "VolumePatches",
    "blend_weights_1d",
    "check_tiling",
    "count_tiles",
    "pad_to",
    "tile_starts",
]

#: Blending modes: raised-cosine ramps, or plain averaging of the overlaps.
MODES = ("cosine", "constant")


def tile_starts(length: int, roi: int, overlap: int) -> list[int]:
    """Start indices of tiles of size ``roi`` covering ``[0, length)`` with >= ``overlap``.

    The first tile starts at 0, the last ends at ``length``; the others are spread evenly.
    ``length`` must be >= ``roi``.
    """
    if length < roi:
        raise ValueError(f"length {length} is shorter than the tile {roi}")
    if not 0 <= overlap < roi:
        raise ValueError(f"overlap must satisfy 0 <= overlap < roi ({roi}), got {overlap}")
    if length == roi:
        return [0]
    n = math.ceil((length - overlap) / (roi - overlap))
    n = max(n, 2)
    span = length - roi
    return sorted({round(i * span / (n - 1)) for i in range(n)})


def blend_weights_1d(
    roi: int, start: int, length: int, ramp: int, mode: str, dtype: torch.dtype
) -> torch.Tensor:
    """Weights ``(roi,)`` of one tile along one axis.

    ``"cosine"``: a raised-cosine ramp over ``ramp`` voxels at each end that touches a
    neighbouring tile (never at the volume's faces); strictly positive everywhere, so every
    voxel has a positive total weight.  ``"constant"``: all ones (plain averaging).
    """
    w = torch.ones(roi, dtype=torch.float64)
    if mode == "constant" or ramp <= 0:
        return w.to(dtype)
    k = torch.arange(ramp, dtype=torch.float64)
    up = torch.sin(0.5 * math.pi * (k + 0.5) / ramp) ** 2  # (0, 1), strictly positive
    if start > 0:
        w[:ramp] = up
    if start + roi < length:
        w[roi - ramp :] = torch.minimum(w[roi - ramp :], up.flip(0))
    return w.to(dtype)


def count_tiles(shape: Sequence[int], roi_size: int, overlap: int) -> int:
    """Number of tiles ``sliding_window_inference`` / ``sliding_window_stream`` run on a
    ``(n0, n1, n2)`` volume (axes shorter than a tile count once)."""
    return math.prod(len(tile_starts(max(int(n), roi_size), roi_size, overlap)) for n in shape)


def check_tiling(roi_size: int, overlap: int, sw_batch_size: int, mode: str) -> None:
    """Raise ``ValueError`` for tiling arguments that cannot work."""
    if roi_size < 1 or sw_batch_size < 1:
        raise ValueError(
            f"roi_size and sw_batch_size must be >= 1, got {roi_size}, {sw_batch_size}"
        )
    if not 0 <= overlap < roi_size:
        raise ValueError(
            f"overlap must satisfy 0 <= overlap < roi_size ({roi_size}), got {overlap}"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be 'cosine' or 'constant', got {mode!r}")


def _reflect(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Reflection padding of any width: reflection needs pad < size, so it is repeated on
    the growing volume; a size-1 axis cannot be reflected and is replicated."""
    while any(pads):
        cur = list(reversed(x.shape[-3:]))
        step = [min(p, max(0, cur[i // 2] - 1)) for i, p in enumerate(pads)]
        if not any(step):
            return F.pad(x, pads, mode="replicate")
        x = F.pad(x, step, mode="reflect")
        pads = [p - s for p, s in zip(pads, step, strict=True)]
    return x


def pad_to(
    x: torch.Tensor, roi: int, padding_mode: str
) -> tuple[torch.Tensor, tuple[slice, slice, slice]]:
    """Pad the last three axes of ``x`` ``(B, C, z, y, x)`` up to ``roi`` where shorter.

    ``padding_mode``: ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"constant"``
    (zeros).  Returns the padded tensor and the slices of the original voxels in it (the
    padding is split evenly, the odd voxel after).
    """
    sizes = x.shape[-3:]
    lows = [max(0, roi - n) // 2 for n in sizes]
    keep = tuple(slice(lo, lo + n) for lo, n in zip(lows, sizes, strict=True))
    pads: list[int] = []
    for n, lo in zip(reversed(sizes), reversed(lows), strict=True):
        pads += [lo, max(0, roi - n) - lo]
    if padding_mode not in ("reflect", "replicate", "circular", "constant"):
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    if any(pads):
        if padding_mode == "reflect":
            x = _reflect(x, pads)
        elif padding_mode == "constant":
            x = F.pad(x, pads, mode="constant", value=0.0)
        else:
            x = F.pad(x, pads, mode=padding_mode)
    return x, (keep[0], keep[1], keep[2])


class Tile(NamedTuple):
    """One tile: batch item ``b`` and its index along each axis of the grid."""

    b: int
    i0: int
    i1: int
    i2: int


class TileGrid:
    """The tiles of a volume ``shape`` ``(n0, n1, n2)`` (any sizes) and their weights.

    Axes shorter than ``roi`` are padded to ``roi`` (:func:`pad_to`); the grid is laid on
    the padded volume (``padded``; the real voxels start at ``low``).  ``weights[a][i]`` is
    the 1D weight of tile ``i`` along axis ``a`` and ``norms[a]`` the sum of those weights
    over the tiles, float64.
    """

    def __init__(self, shape: Sequence[int], roi: int, overlap: int, mode: str = "cosine"):
        if len(shape) != 3 or any(int(n) < 1 for n in shape):
            raise ValueError(f"shape must be (n0, n1, n2) with positive sizes, got {tuple(shape)}")
        check_tiling(roi, overlap, 1, mode)
        n0, n1, n2 = (int(n) for n in shape)
        self.shape = (n0, n1, n2)
        self.roi, self.overlap, self.mode = roi, overlap, mode
        p0, p1, p2 = (max(n, roi) for n in self.shape)
        self.padded = (p0, p1, p2)
        l0, l1, l2 = ((p - n) // 2 for p, n in zip(self.padded, self.shape, strict=True))
        self.low = (l0, l1, l2)  # as pad_to splits the padding
        self.starts = [tile_starts(p, roi, overlap) for p in self.padded]
        self.weights = [
            [blend_weights_1d(roi, s, p, overlap, mode, torch.float64) for s in st]
            for st, p in zip(self.starts, self.padded, strict=True)
        ]
        self.norms = []
        for st, ws, p in zip(self.starts, self.weights, self.padded, strict=True):
            total = torch.zeros(p, dtype=torch.float64)
            for s, w in zip(st, ws, strict=True):
                total[s : s + roi] += w
            self.norms.append(total)

    def tiles(self, batch: int = 1) -> list[Tile]:
        """Every tile of ``batch`` volumes, in order: item, then axis 0, 1, 2."""
        n0, n1, n2 = (len(st) for st in self.starts)
        return [
            Tile(b, i0, i1, i2)
            for b in range(batch)
            for i0 in range(n0)
            for i1 in range(n1)
            for i2 in range(n2)
        ]

    def __len__(self) -> int:
        return math.prod(len(st) for st in self.starts)

    def corner(self, tile: Tile) -> tuple[int, int, int]:
        """Where ``tile`` starts in the padded volume."""
        return self.starts[0][tile.i0], self.starts[1][tile.i1], self.starts[2][tile.i2]

    def weight(self, tile: Tile) -> torch.Tensor:
        """The blending weights ``(roi, roi, roi)`` of ``tile``, float64."""
        w0, w1, w2 = self.weights[0][tile.i0], self.weights[1][tile.i1], self.weights[2][tile.i2]
        return w0[:, None, None] * w1[None, :, None] * w2[None, None, :]

    def normalise(self, block: torch.Tensor, row0: int) -> torch.Tensor:
        """Divide summed tiles ``(..., k, P1, P2)`` (padded rows ``row0 .. row0 + k``) by
        the summed weights, in place; returns ``block``."""
        rows = self.norms[0][row0 : row0 + block.shape[-3]]
        dev, dt = block.device, block.dtype
        block /= rows.to(dev, dt)[:, None, None]
        block /= self.norms[1].to(dev, dt)[None, :, None]
        block /= self.norms[2].to(dev, dt)[None, None, :]
        return block

    def real(self, axis: int) -> slice:
        """The real (unpadded) voxels along ``axis`` of the padded volume."""
        return slice(self.low[axis], self.low[axis] + self.shape[axis])


class VolumePatches:
    """Cuts tiles out of a volume held whole: ``(B, C, n0, n1, n2)``, padded once."""

    def __init__(self, volume: torch.Tensor, grid: TileGrid, padding_mode: str) -> None:
        self.x, _ = pad_to(volume, grid.roi, padding_mode)
        self.grid = grid

    def __call__(self, tiles: Sequence[Tile]) -> torch.Tensor:
        """The tiles ``(n, C, r, r, r)``."""
        r = self.grid.roi
        out = []
        for t in tiles:
            s0, s1, s2 = self.grid.corner(t)
            out.append(self.x[t.b, :, s0 : s0 + r, s1 : s1 + r, s2 : s2 + r])
        return torch.stack(out)


class SlabPatches:
    """Cuts tiles out of a volume read one slab at a time along axis 0.

    ``read(a, b)`` returns rows ``[a, b)`` as ``(C, b - a, n1, n2)``; it is called once per
    row of tiles (``roi`` rows, or the whole axis when shorter), in increasing order, and
    only one slab is held at a time.  Tiles go to ``device`` (default: where ``read``
    returns them).
    """

    def __init__(
        self,
        read: Callable[[int, int], torch.Tensor],
        grid: TileGrid,
        padding_mode: str,
        device: torch.device | str | None = None,
    ) -> None:
        self.read, self.grid, self.padding_mode = read, grid, padding_mode
        self.device = torch.device(device) if device is not None else None
        self.row = -1
        self.slab: torch.Tensor | None = None  # (C, roi, P1, P2)

    def _load(self, i0: int) -> torch.Tensor:
        n0, n1, n2 = self.grid.shape
        s0, roi = self.grid.starts[0][i0], self.grid.roi
        a, b = (0, n0) if n0 < roi else (s0, s0 + roi)
        slab = self.read(a, b)
        if slab.ndim != 4 or tuple(slab.shape[1:]) != (b - a, n1, n2):
            raise ValueError(
                f"read({a}, {b}) returned shape {tuple(slab.shape)}, expected "
                f"(C, {b - a}, {n1}, {n2})"
            )
        dtype = torch.float64 if slab.dtype == torch.float64 else torch.float32
        x, _ = pad_to(slab.to(dtype)[None], roi, self.padding_mode)
        return x[0] if self.device is None else x[0].to(self.device)

    def __call__(self, tiles: Sequence[Tile]) -> torch.Tensor:
        """The tiles ``(n, C, r, r, r)``."""
        r = self.grid.roi
        out = []
        for t in tiles:
            if t.i0 != self.row:
                self.slab = None  # one slab at a time
                self.slab, self.row = self._load(t.i0), t.i0
            assert self.slab is not None
            _, s1, s2 = self.grid.corner(t)
            out.append(self.slab[:, :, s1 : s1 + r, s2 : s2 + r])
        return torch.stack(out)
