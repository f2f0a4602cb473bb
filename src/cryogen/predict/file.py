"""An MRC tomogram in, a new MRC tomogram out, in bounded memory."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryogen.errors import InputError
from cryogen.io import check_output_path, create_volume_memmap, read_volume, rotate_beam_y_to_z
from cryogen.io.mrc_checks import HEADER_BYTES
from cryogen.io.space import check_free_space
from cryogen.model import LoadedModel
from cryogen.predict.bounded_io import release
from cryogen.predict.keep_measured import IN_MEMORY_BYTES_PER_VOXEL
from cryogen.predict.options import PredictOptions
from cryogen.predict.volume import predict_stream
from cryogen.tiling import count_tiles

__all__ = ["PredictionResult", "disk_bytes", "predict_file"]


@dataclass(frozen=True)
class PredictionResult:
    """What :func:`predict_file` wrote.

    Attributes
    ----------
    output, std
        The prediction and the standard-deviation map (``None`` without one).
    shape
        ``(z, y, x)`` of the written files (the input file's orientation).
    voxel_size
        Å.
    seconds
        Wall-clock time of the prediction.
    tiles
        Tiles per sample.
    """

    output: Path
    std: Path | None
    shape: tuple[int, int, int]
    voxel_size: float
    seconds: float
    tiles: int


def disk_bytes(shape: tuple[int, ...], options: PredictOptions, with_std: bool) -> int:
    """Disk space a prediction of a ``(z, y, x)`` volume needs at its peak: the float32
    output, the standard-deviation map, and the half spectrum that ``keep_measured``
    keeps on disk when the volume does not fit ``options.max_memory``."""
    nz, ny, nx = (int(n) for n in shape)
    volume = HEADER_BYTES + 4 * nz * ny * nx
    scratch = 0
    if options.keep_measured and nz * ny * nx * IN_MEMORY_BYTES_PER_VOXEL > options.max_memory:
        scratch = 8 * nz * ny * (nx // 2 + 1)  # complex64
    return volume * (2 if with_std else 1) + scratch


def predict_file(
    model: LoadedModel,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    std_path: str | os.PathLike[str] | None = None,
    beam_axis: str = "z",
    pixel_size: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> PredictionResult:
    """Stream an MRC tomogram through the generator into a new MRC file.

    The input is memory-mapped and read slab by slab; the output is a memory-mapped MRC
    written under a hidden temporary name in its folder and renamed only when complete
    (``cryogen.io.create_volume_memmap``), with the input's voxel size (or
    ``pixel_size``), origin and intensity scale, in the input file's orientation (also
    with ``beam_axis="y"``).  ``std_path`` receives the standard-deviation map of the
    samples (``options.samples >= 2``).  See :func:`predict_stream` for the prediction;
    the out-of-core scratch file of ``keep_measured`` goes to the output's folder.

    Raises
    ------
    InputError
        Unreadable input, NaN/Inf in it (the message names the file), bad options.
    OutputError
        An output exists (without ``overwrite``), is the input, cannot be written, its disk
        has too little free space for everything the prediction writes (checked before it
        starts), or the prediction holds NaN/Inf; nothing is left.
    """
    options = options or PredictOptions()
    options.check()
    src, dst = Path(input_path), Path(output_path)
    for p in (dst, std_path):
        if p is not None:
            check_output_path(p, overwrite, inputs=[src, model.path])
    vol = read_volume(src, beam_axis=beam_axis, pixel_size=pixel_size, check_values=False)
    file_shape, origin = vol.shape, vol.origin
    if beam_axis == "y":  # write in the file's own orientation: undo read_volume's rotation
        file_shape = (vol.shape[1], vol.shape[0], vol.shape[2])
        origin = (vol.origin[0], vol.origin[2], vol.origin[1])
    roi = options.tile_for(model.crop_size)
    check_free_space(dst.parent, disk_bytes(file_shape, options, std_path is not None), dst)

    def create(stack: ExitStack, path: str | os.PathLike[str]) -> np.ndarray:
        mm = stack.enter_context(
            create_volume_memmap(
                path, file_shape, voxel_size=vol.voxel_size, origin=origin, overwrite=overwrite
            )
        )
        return rotate_beam_y_to_z(mm) if beam_axis == "y" else mm

    t0 = time.perf_counter()
    try:
        with ExitStack() as stack:  # the std file is completed first, then the output
            out = create(stack, dst)
            std = create(stack, std_path) if std_path is not None else None
            predict_stream(
                model, vol.data, out, options, std_out=std, scratch_dir=dst.parent,
                progress=progress, description=src.name,
            )  # fmt: skip
            del out, std  # unmapped before the files' statistics passes
    except InputError as exc:
        raise InputError(f"{src}: {exc}", advice=exc.advice) from None
    finally:
        release(vol.data)
    return PredictionResult(
        output=dst,
        std=Path(std_path) if std_path is not None else None,
        shape=(int(file_shape[0]), int(file_shape[1]), int(file_shape[2])),
        voxel_size=float(vol.voxel_size),
        seconds=time.perf_counter() - t0,
        tiles=count_tiles(vol.shape, roi, options.overlap),
    )
