"""``cryogen reconstruct``: weighted back-projection of an aligned tilt series."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    Device,
    Overwrite,
    PixelSize,
    option,
    output_option,
    target_pixel_size_option,
)
from cryogen.errors import InputError

__all__ = ["reconstruct"]

console = Console()

_MB = 1024**2


# ------------------------------------------------------------------------------ options
TiltSeriesFile = Annotated[
    Path,
    typer.Argument(
        help="Aligned tilt series (MRC stack .mrc/.st/.ali, images (n_tilts, y, x), "
        "tilt axis along the image y).",
        show_default=False,
    ),
]
Tlt = Annotated[
    Path | None,
    typer.Option(
        "--tlt",
        help="IMOD .tlt file, one angle (degrees) per image (default: the tilt "
        "series' name with .tlt).",
        show_default=False,
    ),
]
Output = Annotated[
    Path | None,
    output_option("Tomogram to write (MRC) (default: the tilt series' name with _rec.mrc)."),
]
Thickness = Annotated[
    int | None,
    typer.Option(
        "--thickness",
        min=1,
        help="Tomogram thickness along the beam in pixels of the input tilt series "
        "(divided by the binning) (default: the image width, a cube).",
        show_default=False,
    ),
]
BinFactor = Annotated[
    float,
    option(
        "bin_factor",
        "--bin",
        min=1.0,
        help="Bin the images by this factor (Fourier cropping) before reconstructing.",
    ),
]
TargetPixelSize = Annotated[
    float | None,
    target_pixel_size_option(
        "Bin to this pixel size in Å instead of giving --bin (default: use --bin)."
    ),
]
Tilts = Annotated[
    str,
    typer.Option(
        "--tilts",
        help="Reconstruct from all tilts, or only the even (1st, 3rd, ... in tilt order) or "
        "the odd ones: two half-sets with independent noise for data recorded without "
        "frames. Each has twice the tilt increment (more streaks, less resolution) and "
        "their streaks differ, so even/odd frames make better half-sets where they exist.",
    ),
]
ChunkMb = Annotated[
    int,
    typer.Option(
        "--chunk-mb",
        min=1,
        help="Working memory of one chunk of rows along the tilt axis, MiB.",
    ),
]


# ------------------------------------------------------------------------------ command
def reconstruct(
    tilt_series: TiltSeriesFile,
    tlt: Tlt = None,
    output: Output = None,
    thickness: Thickness = None,
    bin_factor: BinFactor = 1.0,
    target_pixel_size: TargetPixelSize = None,
    tilts: Tilts = "all",
    chunk_mb: ChunkMb = 256,
    pixel_size: PixelSize = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Weighted back-projection (radial ramp weighting) of an aligned tilt series into a
    tomogram, chunked along the tilt axis so memory stays bounded."""
    from cryogen.device import pick_device
    from cryogen.io import check_output_path, create_volume_memmap, derived_path
    from cryogen.io.space import format_bytes
    from cryogen.tomo import reconstruct_wbp
    from cryogen.tomo.files import read_tilt_series

    if tilts not in ("all", "even", "odd"):
        raise InputError(f"--tilts must be all, even or odd, got {tilts!r}")
    suffix = "_rec" if tilts == "all" else f"_{tilts}_rec"
    out = output if output is not None else derived_path(tilt_series, suffix)
    tlt_path = tlt if tlt is not None else derived_path(tilt_series, "", ".tlt")
    check_output_path(out, overwrite, inputs=[tilt_series, tlt_path])
    if tlt is None and not tlt_path.exists():
        raise InputError(f"no --tlt given and {tlt_path} does not exist")
    dev = pick_device(device)
    series = read_tilt_series(
        tilt_series,
        tlt_path,
        pixel_size=pixel_size,
        bin_factor=bin_factor,
        target_pixel_size=target_pixel_size,
        device=dev,
    )
    if tilts != "all":
        series = series.every_other(tilts)
    shape = series.tomogram_shape(thickness)
    angles, voxel = series.angles, series.pixel_size
    size = format_bytes(4 * math.prod(shape))  # float32; refused beyond the disk's free space
    with (
        console.status(
            f"reconstructing {'x'.join(map(str, shape))} ({size}) from {len(angles)} tilts"
        ),
        create_volume_memmap(out, shape, voxel_size=voxel, overwrite=overwrite) as mm,
    ):
        reconstruct_wbp(
            series.images,
            angles,
            thickness=shape[0],
            out=mm,
            chunk_bytes=chunk_mb * _MB,
            device=dev,
        )
    console.print(
        f"wrote {out}  shape (z, y, x) {shape} ({size})  voxel size {voxel:.4g} Å  "
        f"({len(angles)} tilts {angles.min():g}..{angles.max():g} deg)"
    )
