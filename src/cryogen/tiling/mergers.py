"""Where blended tiles go: a volume in memory, or slabs handed to a ``write`` callable.

Both mergers add each tile's prediction times its weight (:meth:`TileGrid.weight`) into
sums and divide by the summed weights (:meth:`TileGrid.normalise`, separable), in the same
order, so that a volume streamed in slabs equals the volume blended in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch

from cryogen.tiling.grid import Tile, TileGrid

__all__ = ["FLUSH_BYTES", "AverageMerger", "Merger", "SlabMerger", "default_accumulate_dtype"]

#: Bytes of accumulated rows that :class:`SlabMerger` normalises and writes at a time.
FLUSH_BYTES = 64 * 1024**2


def default_accumulate_dtype(device: torch.device | str) -> torch.dtype:
    """float64 (an identity predictor then returns its input exactly), float32 where the
    device has no float64 (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


class Merger(ABC):
    """Weighted sums of tile predictions; a subclass says where the sums of a tile live."""

    def __init__(self, grid: TileGrid, device: torch.device, dtype: torch.dtype) -> None:
        self.grid, self.device, self.dtype = grid, device, dtype

    def add(self, tiles: Sequence[Tile], preds: torch.Tensor) -> None:
        """Add ``preds`` ``(n, C_out, r, r, r)``, the predictions of ``tiles``."""
        preds = preds.to(device=self.device, dtype=self.dtype)
        for k, tile in enumerate(tiles):
            w = self.grid.weight(tile).to(device=self.device, dtype=self.dtype)
            self._sums(tile, preds.shape[1]).addcmul_(preds[k], w)

    @abstractmethod
    def _sums(self, tile: Tile, channels: int) -> torch.Tensor:
        """The ``(C_out, r, r, r)`` view of the sums that ``tile`` covers."""


class AverageMerger(Merger):
    """The whole blended volume in memory: ``(B, C_out, P0, P1, P2)`` sums on ``device``."""

    def __init__(
        self, grid: TileGrid, batch: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().__init__(grid, device, dtype)
        self.batch = batch
        self.sums: torch.Tensor | None = None

    def _sums(self, tile: Tile, channels: int) -> torch.Tensor:
        if self.sums is None:
            shape = (self.batch, channels, *self.grid.padded)
            self.sums = torch.zeros(shape, device=self.device, dtype=self.dtype)
        s0, s1, s2 = self.grid.corner(tile)
        r = self.grid.roi
        return self.sums[tile.b, :, s0 : s0 + r, s1 : s1 + r, s2 : s2 + r]

    def result(self) -> torch.Tensor:
        """The blended volume ``(B, C_out, n0, n1, n2)`` (the padding cropped)."""
        if self.sums is None:
            raise ValueError("no tile was added")
        g = self.grid
        out = g.normalise(self.sums, 0)
        self.sums = None
        return out[..., g.real(0), g.real(1), g.real(2)]


class SlabMerger(Merger):
    """Blended rows streamed to ``write`` in bounded memory.

    The sums of one row of tiles (``roi`` rows along axis 0) are kept on the CPU; when the
    first tile of the next row arrives, the rows that no later tile touches are normalised
    and passed to ``write(a, b, block)`` (real rows ``[a, b)``, float32 CPU
    ``(C_out, b - a, n1, n2)``; in chunks of about :data:`FLUSH_BYTES` of sums), in order,
    each row once.  :meth:`finish` writes the rest.
    """

    def __init__(
        self,
        grid: TileGrid,
        write: Callable[[int, int, torch.Tensor], None],
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(grid, torch.device("cpu"), dtype)
        self.write = write
        self.sums: torch.Tensor | None = None  # (C_out, roi, P1, P2); sums[:, 0] is row base
        self.base = 0

    def _sums(self, tile: Tile, channels: int) -> torch.Tensor:
        g, r = self.grid, self.grid.roi
        s0, s1, s2 = g.corner(tile)
        if self.sums is None:
            self.sums = torch.zeros((channels, r, *g.padded[1:]), dtype=self.dtype)
        if s0 > self.base:
            self._advance(s0)
        return self.sums[:, :, s1 : s1 + r, s2 : s2 + r]

    def _advance(self, start: int) -> None:
        """Write the rows before ``start`` and shift the sums to begin there."""
        assert self.sums is not None
        self._flush(start)
        shift, r = start - self.base, self.grid.roi
        for j in range(r - shift):  # row by row, forward: no overlap, no copy
            self.sums[:, j] = self.sums[:, j + shift]
        self.sums[:, max(0, r - shift) :] = 0
        self.base = start

    def _flush(self, stop: int) -> None:
        """Normalise and write the real rows in ``[base, stop)`` (padded indices)."""
        assert self.sums is not None
        g, sums = self.grid, self.sums
        k0 = max(self.base, g.low[0])
        k1 = min(stop, g.low[0] + g.shape[0])
        step = max(1, FLUSH_BYTES // max(1, sums[:, 0].numel() * sums.element_size()))
        for c0 in range(k0, k1, step):  # in chunks: small temporaries
            c1 = min(k1, c0 + step)
            block = g.normalise(sums[:, c0 - self.base : c1 - self.base].clone(), c0)
            block = block[:, :, g.real(1), g.real(2)].to(torch.float32).contiguous()
            self.write(c0 - g.low[0], c1 - g.low[0], block)
            del block

    def finish(self) -> None:
        """Write the rows not written yet."""
        if self.sums is None:
            raise ValueError("no tile was added")
        self._flush(self.grid.padded[0])
        self.sums = None
