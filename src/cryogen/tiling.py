"""Sliding-window inference over a volume of any shape, independent of the model.

A volume ``(..., z, y, x)`` is covered by cubic tiles of edge ``roi_size`` that overlap by at
least ``overlap`` voxels; each tile goes through ``predictor`` (in batches of
``sw_batch_size``) and the outputs are blended with weights that taper smoothly (raised
cosine) inside the overlaps and stay at 1 at the volume's faces, so there are no seams and
an identity predictor returns its input.  Axes shorter than ``roi_size`` are padded
(reflection by default) and cropped back.  Compare MONAI's ``sliding_window_inference``.

``sliding_window_inference`` holds the whole volume and its output in memory.
``sliding_window_stream`` computes the same blend slab by slab along the first axis: it asks
a ``read`` callable for the rows of one row of tiles (``roi_size`` rows), accumulates the
blended tiles in a buffer of ``roi_size`` rows and hands every finished row range to a
``write`` callable, so its memory is bounded by ``roi_size x n1 x n2`` voxels whatever the
length of the first axis.  The tile grid and the weights are those of
``sliding_window_inference``; the normalisation by the summed weights is separable (the tile
grid is a Cartesian product), so it is three 1D sums instead of a volume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

#: Bytes of accumulated rows normalised and written at a time by ``sliding_window_stream``.
_FLUSH_BYTES = 64 * 1024**2

__all__ = [
    "sliding_window_inference",
    "sliding_window_stream",
    "count_tiles",
    "tile_starts",
    "blend_weights_1d",
]


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


def _pad_to(
    x: torch.Tensor, roi: int, padding_mode: str
) -> tuple[torch.Tensor, tuple[slice, slice, slice]]:
    """Pad the last three axes of ``x`` ``(B, C, z, y, x)`` up to ``roi`` where shorter."""
    pads: list[int] = []
    keep: list[slice] = []
    for n in reversed(x.shape[-3:]):
        total = max(0, roi - n)
        lo = total // 2
        pads += [lo, total - lo]
    for n, lo in zip(x.shape[-3:], pads[::2][::-1], strict=True):
        keep.append(slice(lo, lo + n))
    if not any(pads):
        return x, (keep[0], keep[1], keep[2])
    if padding_mode == "reflect":
        # reflection needs pad < size; repeat it on the growing volume until large enough
        while any(pads):
            step: list[int] = []
            cur = list(reversed(x.shape[-3:]))
            for i in range(3):
                lim = max(0, cur[i] - 1)
                a, b = min(pads[2 * i], lim), min(pads[2 * i + 1], lim)
                step += [a, b]
            if not any(step):  # a size-1 axis cannot be reflected: replicate it
                x = F.pad(x, pads, mode="replicate")
                break
            x = F.pad(x, step, mode="reflect")
            pads = [p - s for p, s in zip(pads, step, strict=True)]
    elif padding_mode in ("replicate", "circular"):
        x = F.pad(x, pads, mode=padding_mode)
    elif padding_mode == "constant":
        x = F.pad(x, pads, mode="constant", value=0.0)
    else:
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    return x, (keep[0], keep[1], keep[2])


def sliding_window_inference(
    volume: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
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
        memory on large tomograms.

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
    if roi_size < 1 or sw_batch_size < 1:
        raise ValueError(
            f"roi_size and sw_batch_size must be >= 1, got {roi_size}, {sw_batch_size}"
        )
    if not 0 <= overlap < roi_size:
        raise ValueError(
            f"overlap must satisfy 0 <= overlap < roi_size ({roi_size}), got {overlap}"
        )
    if mode not in ("cosine", "constant"):
        raise ValueError(f"mode must be 'cosine' or 'constant', got {mode!r}")
    ndim_in = volume.ndim
    x = volume
    if ndim_in == 3:
        x = x[None, None]
    elif ndim_in == 4:
        x = x[None]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    x, keep = _pad_to(x, roi_size, padding_mode)
    bsz, _, nz, ny, nx = x.shape
    dev_out = torch.device(out_device) if out_device is not None else x.device
    starts = [tile_starts(n, roi_size, overlap) for n in (nz, ny, nx)]
    wz, wy, wx = (
        [blend_weights_1d(roi_size, s, n, overlap, mode, dtype) for s in st]
        for st, n in zip(starts, (nz, ny, nx), strict=True)
    )
    tiles = [
        (b, iz, iy, ix)
        for b in range(bsz)
        for iz in range(len(starts[0]))
        for iy in range(len(starts[1]))
        for ix in range(len(starts[2]))
    ]

    out: torch.Tensor | None = None
    norm = torch.zeros((bsz, 1, nz, ny, nx), dtype=dtype, device=dev_out)

    def batches() -> Iterator[list[tuple[int, int, int, int]]]:
        for i in range(0, len(tiles), sw_batch_size):
            yield tiles[i : i + sw_batch_size]

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("tiles", total=len(tiles))
    try:
        for group in batches():
            patches = torch.stack(
                [
                    x[
                        b,
                        :,
                        starts[0][iz] : starts[0][iz] + roi_size,
                        starts[1][iy] : starts[1][iy] + roi_size,
                        starts[2][ix] : starts[2][ix] + roi_size,
                    ]
                    for b, iz, iy, ix in group
                ]
            )
            pred = predictor(patches)
            if (
                pred.ndim != 5
                or pred.shape[0] != len(group)
                or pred.shape[-3:] != patches.shape[-3:]
            ):
                raise ValueError(
                    f"predictor returned shape {tuple(pred.shape)} for tiles {tuple(patches.shape)}"
                )
            pred = pred.to(device=dev_out, dtype=dtype)
            if out is None:
                out = torch.zeros((bsz, pred.shape[1], nz, ny, nx), dtype=dtype, device=dev_out)
            for k, (b, iz, iy, ix) in enumerate(group):
                w = wz[iz][:, None, None] * wy[iy][None, :, None] * wx[ix][None, None, :]
                w = w.to(dev_out)
                sz, sy, sx = starts[0][iz], starts[1][iy], starts[2][ix]
                region = (
                    b,
                    slice(None),
                    slice(sz, sz + roi_size),
                    slice(sy, sy + roi_size),
                    slice(sx, sx + roi_size),
                )
                out[region] += pred[k] * w
                norm[region] += w
            if bar is not None:
                bar.advance(task, len(group))
    finally:
        if bar is not None:
            bar.stop()
    assert out is not None
    out = out / norm
    out = out[..., keep[0], keep[1], keep[2]]
    if ndim_in == 3:
        return out[0, 0] if out.shape[1] == 1 else out[0]
    if ndim_in == 4:
        return out[0]
    return out


def _check_args(roi_size: int, overlap: int, sw_batch_size: int, mode: str) -> None:
    if roi_size < 1 or sw_batch_size < 1:
        raise ValueError(
            f"roi_size and sw_batch_size must be >= 1, got {roi_size}, {sw_batch_size}"
        )
    if not 0 <= overlap < roi_size:
        raise ValueError(
            f"overlap must satisfy 0 <= overlap < roi_size ({roi_size}), got {overlap}"
        )
    if mode not in ("cosine", "constant"):
        raise ValueError(f"mode must be 'cosine' or 'constant', got {mode!r}")


def count_tiles(shape: Sequence[int], roi_size: int, overlap: int) -> int:
    """Number of tiles ``sliding_window_inference`` / ``sliding_window_stream`` run on a
    ``(n0, n1, n2)`` volume (axes shorter than a tile count once)."""
    return math.prod(len(tile_starts(max(int(n), roi_size), roi_size, overlap)) for n in shape)


def sliding_window_stream(
    read: Callable[[int, int], torch.Tensor],
    shape: Sequence[int],
    predictor: Callable[[torch.Tensor], torch.Tensor],
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

    The volume is never held whole: for each row of tiles along axis 0 (tiles starting at
    the same ``n0`` index) ``read`` returns the ``roi_size`` rows it covers, the tiles go
    through ``predictor`` in batches and are blended into a buffer of ``roi_size`` rows;
    the rows no later tile touches are then normalised and passed to ``write``, in order,
    each row exactly once.  The result equals ``sliding_window_inference`` with the same
    arguments up to floating-point rounding (it is exact for an identity predictor with the
    default float64 accumulation).

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
        of rows is handed over in chunks of about 64 MiB of accumulator).
    roi_size, overlap, sw_batch_size, mode, padding_mode
        As in :func:`sliding_window_inference`.
    device
        Where tiles are sent (default: where ``read`` returns them).  The accumulation
        buffer is always on the CPU.
    accumulate_dtype
        dtype of the accumulation buffer (float64: exact identity; float32: half the
        memory).
    progress
        Show a progress bar over the tiles (rich).
    description
        Label of the progress bar.

    Notes
    -----
    Peak memory is about ``roi_size * N1 * N2 * (4 C + 8 C_out)`` bytes (``N1, N2`` the
    sizes of axes 1 and 2, padded to ``roi_size`` when smaller) plus one batch of tiles:
    independent of ``n0``.  Stream along the longest axis to make it smallest.
    """
    _check_args(roi_size, overlap, sw_batch_size, mode)
    if len(shape) != 3 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape must be (n0, n1, n2) with positive sizes, got {tuple(shape)}")
    n0, n1, n2 = (int(n) for n in shape)
    roi = roi_size
    padded = [max(n, roi) for n in (n0, n1, n2)]
    lo = [(p - n) // 2 for p, n in zip(padded, (n0, n1, n2), strict=True)]  # as _pad_to
    starts = [tile_starts(p, roi, overlap) for p in padded]
    weights = [
        [blend_weights_1d(roi, s, p, overlap, mode, torch.float64) for s in st]
        for st, p in zip(starts, padded, strict=True)
    ]
    norms = []  # summed weights along each axis, (padded_a,) float64
    for st, ws, p in zip(starts, weights, padded, strict=True):
        acc1 = torch.zeros(p, dtype=torch.float64)
        for s, w in zip(st, ws, strict=True):
            acc1[s : s + roi] += w
        norms.append(acc1)
    plane_tiles = [(iy, ix) for iy in range(len(starts[1])) for ix in range(len(starts[2]))]
    cpu = torch.device("cpu")

    bar = None
    task = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(description, total=len(starts[0]) * len(plane_tiles))
    acc: torch.Tensor | None = None  # (C_out, roi, P1, P2); acc[:, 0] is row ``base``
    base = 0
    try:
        for r, s0 in enumerate(starts[0]):
            # ---------------------------------------------------------------- input rows
            a, b = (0, n0) if n0 < roi else (s0, s0 + roi)
            slab = read(a, b)
            if slab.ndim != 4 or tuple(slab.shape[1:]) != (b - a, n1, n2):
                raise ValueError(
                    f"read({a}, {b}) returned shape {tuple(slab.shape)}, expected "
                    f"(C, {b - a}, {n1}, {n2})"
                )
            dtype = torch.float64 if slab.dtype == torch.float64 else torch.float32
            x, _ = _pad_to(slab.to(dtype)[None], roi, padding_mode)  # (1, C, roi, P1, P2)
            x = x[0]
            if device is not None:
                x = x.to(device)
            # ---------------------------------------------------------------- shift buffer
            if acc is not None and s0 > base:
                shift = s0 - base
                for j in range(roi - shift):  # row by row, forward: no overlap, no copy
                    acc[:, j] = acc[:, j + shift]
                acc[:, max(0, roi - shift) :] = 0
            base = s0
            w0 = weights[0][r]
            # ---------------------------------------------------------------- tiles
            for i in range(0, len(plane_tiles), sw_batch_size):
                group = plane_tiles[i : i + sw_batch_size]
                patches = torch.stack(
                    [
                        x[:, :, sy : sy + roi, sx : sx + roi]
                        for sy, sx in ((starts[1][iy], starts[2][ix]) for iy, ix in group)
                    ]
                )
                pred = predictor(patches)
                if (
                    pred.ndim != 5
                    or pred.shape[0] != len(group)
                    or pred.shape[-3:] != patches.shape[-3:]
                ):
                    raise ValueError(
                        f"predictor returned shape {tuple(pred.shape)} for tiles "
                        f"{tuple(patches.shape)}"
                    )
                pred = pred.to(device=cpu, dtype=accumulate_dtype)
                if acc is None:
                    acc = torch.zeros(
                        (pred.shape[1], roi, padded[1], padded[2]), dtype=accumulate_dtype
                    )
                for k, (iy, ix) in enumerate(group):
                    w = (
                        w0[:, None, None]
                        * weights[1][iy][None, :, None]
                        * weights[2][ix][None, None, :]
                    ).to(accumulate_dtype)
                    sy, sx = starts[1][iy], starts[2][ix]
                    acc[:, :, sy : sy + roi, sx : sx + roi].addcmul_(pred[k], w)
                if bar is not None and task is not None:
                    bar.advance(task, len(group))
            assert acc is not None
            del x, slab, patches, pred
            # ---------------------------------------------------------------- finished rows
            end = starts[0][r + 1] if r + 1 < len(starts[0]) else padded[0]
            k0, k1 = max(s0, lo[0]), min(end, lo[0] + n0)  # padded rows that are real rows
            row_bytes = acc[:, 0].numel() * acc.element_size()
            step = max(1, _FLUSH_BYTES // max(1, row_bytes))
            for c0 in range(k0, k1, step):  # in chunks: small temporaries
                c1 = min(k1, c0 + step)
                block = acc[:, c0 - s0 : c1 - s0].clone()
                block /= norms[0][c0:c1, None, None].to(accumulate_dtype)
                block /= norms[1][None, :, None].to(accumulate_dtype)
                block /= norms[2][None, None, :].to(accumulate_dtype)
                block = block[:, :, lo[1] : lo[1] + n1, lo[2] : lo[2] + n2]
                write(c0 - lo[0], c1 - lo[0], block.to(torch.float32).contiguous())
                del block
    finally:
        if bar is not None:
            bar.stop()
