"""Sliding-window inference over a volume of any shape, independent of the model.

A volume ``(..., z, y, x)`` is covered by cubic tiles of edge ``roi_size`` that overlap by at
least ``overlap`` voxels; each tile goes through ``predictor`` (in batches of
``sw_batch_size``) and the outputs are blended with weights that taper smoothly (raised
cosine) inside the overlaps and stay at 1 at the volume's faces, so there are no seams and
an identity predictor returns its input.  Axes shorter than ``roi_size`` are padded
(reflection by default) and cropped back.  Compare MONAI's ``sliding_window_inference``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["sliding_window_inference", "tile_starts", "blend_weights_1d"]


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
