"""One loop over the tiles, and the two ways of running it.

The loop (:func:`run_tiles`) takes the tiles of a :class:`~cryogen.tiling.grid.TileGrid`
in order, cuts them out in batches (a *patches* callable: :class:`VolumePatches` for a
volume in memory, :class:`SlabPatches` for one read slab by slab), runs the predictor and
hands the predictions to a merger (:class:`AverageMerger` in memory, :class:`SlabMerger`
streaming finished rows to a ``write`` callable).  Compare MONAI's ``PatchInferer`` with
its ``Splitter`` and ``Merger``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch

from cryogen.tiling.grid import SlabPatches, Tile, TileGrid, VolumePatches, check_tiling
from cryogen.tiling.mergers import AverageMerger, Merger, SlabMerger, default_accumulate_dtype

__all__ = ["run_tiles", "sliding_window_inference", "sliding_window_stream"]

Predictor = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def _progress(show: bool, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar (or nothing); yields ``advance(n)``."""
    if not show:
        yield lambda n: None
        return
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    task = bar.add_task(description, total=total)
    try:
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()


def run_tiles(
    tiles: Sequence[Tile],
    patches: Callable[[Sequence[Tile]], torch.Tensor],
    predictor: Predictor,
    merger: Merger,
    *,
    batch_size: int = 1,
    progress: bool = False,
    description: str = "tiles",
) -> None:
    """Predict ``tiles`` in batches of ``batch_size`` and add the results to ``merger``.

    ``patches(group)`` gives the tiles ``(n, C, r, r, r)``; ``predictor`` must map them to
    ``(n, C_out, r, r, r)``.
    """
    with _progress(progress, description, len(tiles)) as advance:
        for i in range(0, len(tiles), batch_size):
            group = tiles[i : i + batch_size]
            x = patches(group)
            pred = predictor(x)
            if pred.ndim != 5 or pred.shape[0] != len(group) or pred.shape[-3:] != x.shape[-3:]:
                raise ValueError(
                    f"predictor returned shape {tuple(pred.shape)} for tiles {tuple(x.shape)}"
                )
            merger.add(group, pred)
            del x, pred
            advance(len(group))


def sliding_window_inference(
    volume: torch.Tensor,
    predictor: Predictor,
    *,
    roi_size: int = 64,
    overlap: int = 16,
    sw_batch_size: int = 1,
    mode: Literal["cosine", "constant"] = "cosine",
    padding_mode: str = "reflect",
    progress: bool = False,
    out_device: torch.device | str | None = None,
) -> torch.Tensor:
    """Apply ``predictor`` to overlapping cubic tiles of ``volume`` and blend the results.

    Parameters
    ----------
    volume
        ``(z, y, x)``, ``(C, z, y, x)`` or ``(B, C, z, y, x)`` tensor of any size (odd,
        non-cubic and smaller than one tile included).
    predictor
        Maps a batch of tiles ``(n, C, r, r, r)`` to ``(n, C_out, r, r, r)`` with
        ``r = roi_size``; it is called on ``volume``'s device.
    roi_size
        Tile edge in voxels.
    overlap
        Least overlap of neighbouring tiles in voxels (``0 <= overlap < roi_size``); also the
        length of the cosine ramps.
    sw_batch_size
        Tiles per predictor call.
    mode
        ``"cosine"`` (smooth blending) or ``"constant"`` (plain averaging of overlaps).
    padding_mode
        How axes shorter than ``roi_size`` are padded: ``"reflect"`` (default),
        ``"replicate"``, ``"circular"`` or ``"constant"`` (zeros).
    progress
        Show a progress bar over the tiles.
    out_device
        Device that accumulates the output (default: ``volume``'s); the CPU saves GPU
        memory on large tomograms.  Sums are float64 (float32 on MPS).

    Returns
    -------
    torch.Tensor
        Same leading layout as ``volume`` with ``C_out`` channels (``(z, y, x)`` in,
        ``(z, y, x)`` out when ``C_out == 1``), float32 (or ``volume``'s float64).
    """
    if volume.ndim not in (3, 4, 5):
        raise ValueError(
            f"volume must be (z, y, x), (C, z, y, x) or (B, C, z, y, x), got {tuple(volume.shape)}"
        )
    check_tiling(roi_size, overlap, sw_batch_size, mode)
    x = volume.reshape((1,) * (5 - volume.ndim) + tuple(volume.shape))
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    grid = TileGrid(x.shape[-3:], roi_size, overlap, mode)
    dev = torch.device(out_device) if out_device is not None else x.device
    merger = AverageMerger(grid, x.shape[0], dev, default_accumulate_dtype(dev))
    patches = VolumePatches(x.to(dtype), grid, padding_mode)
    run_tiles(
        grid.tiles(x.shape[0]), patches, predictor, merger, batch_size=sw_batch_size,
        progress=progress,
    )  # fmt: skip
    out = merger.result().to(dtype)
    if volume.ndim == 3:
        return out[0, 0] if out.shape[1] == 1 else out[0]
    return out[0] if volume.ndim == 4 else out


def sliding_window_stream(
    read: Callable[[int, int], torch.Tensor],
    shape: Sequence[int],
    predictor: Predictor,
    write: Callable[[int, int, torch.Tensor], None],
    *,
    roi_size: int = 64,
    overlap: int = 16,
    sw_batch_size: int = 1,
    mode: Literal["cosine", "constant"] = "cosine",
    padding_mode: str = "reflect",
    device: torch.device | str | None = None,
    accumulate_dtype: torch.dtype = torch.float64,
    progress: bool = False,
    description: str = "tiles",
) -> None:
    """Sliding-window inference streamed along the first axis, in bounded memory.

    The volume is never held whole: ``read`` gives the ``roi_size`` rows of one row of
    tiles along axis 0 at a time, the tiles go through ``predictor`` in batches and are
    blended into sums of ``roi_size`` rows; the rows no later tile touches are then
    normalised and passed to ``write``, in order, each row exactly once.  The tiles, the
    weights and the order of the sums are those of :func:`sliding_window_inference`, so the
    result equals it (exactly for an identity predictor with float64 sums).

    Parameters
    ----------
    read
        ``read(a, b)`` returns rows ``[a, b)`` of axis 0 as a ``(C, b - a, n1, n2)`` tensor
        (any device; tiles are moved to ``device``).  It is called with ``b - a <=
        roi_size``, once per row of tiles, in increasing order (rows in the overlaps of
        two rows of tiles are read twice).
    shape
        ``(n0, n1, n2)`` of the volume; any sizes (odd, smaller than a tile).
    predictor
        Maps tiles ``(n, C, r, r, r)`` (``r = roi_size``, on ``device``) to
        ``(n, C_out, r, r, r)``.
    write
        ``write(a, b, block)`` receives finished rows ``[a, b)`` as a float32 CPU tensor
        ``(C_out, b - a, n1, n2)``; the row ranges partition ``[0, n0)`` in order (a range
        of rows is handed over in chunks of about 64 MiB of sums).
    roi_size, overlap, sw_batch_size, mode, padding_mode, progress
        As in :func:`sliding_window_inference`.
    device
        Where tiles are sent (default: where ``read`` returns them).  The sums are always
        on the CPU.
    accumulate_dtype
        dtype of the sums (float64: exact identity; float32: half the memory).
    description
        Label of the progress bar.

    Notes
    -----
    Peak memory is about ``roi_size * N1 * N2 * (4 C + 8 C_out)`` bytes (``N1, N2`` the
    sizes of axes 1 and 2, padded to ``roi_size`` when smaller) plus one batch of tiles:
    independent of ``n0``.  Stream along the longest axis to make it smallest.
    """
    check_tiling(roi_size, overlap, sw_batch_size, mode)
    grid = TileGrid(shape, roi_size, overlap, mode)
    merger = SlabMerger(grid, write, accumulate_dtype)
    patches = SlabPatches(read, grid, padding_mode, device)
    run_tiles(
        grid.tiles(), patches, predictor, merger, batch_size=sw_batch_size, progress=progress,
        description=description,
    )  # fmt: skip
    merger.finish()
