"""``cryogen prepare``: list tomograms in a STAR file, optionally binned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    AmplitudeContrast,
    Cs,
    OutputDir,
    Overwrite,
    PixelSize,
    TiltMax,
    TiltMin,
    Voltage,
    defocus_option,
    output_option,
    target_pixel_size_option,
)
from cryogen.errors import InputError
from cryogen.tomo.ctf import CTFParams

__all__ = ["prepare"]

console = Console()


# ------------------------------------------------------------------------------ options
Inputs = Annotated[
    list[Path],
    typer.Argument(
        help="Tomograms (MRC files) and/or folders holding them (.mrc, .rec, ...).",
        show_default=False,
    ),
]
Output = Annotated[
    Path,
    output_option("STAR file to write (RELION-5 / IsoNet2 column names)."),
]
Defocus = Annotated[
    float | None,
    defocus_option(
        "Defocus of the zero tilt, µm underfocus, for every tomogram (written in "
        "Å to rlnDefocus; edit the STAR for per-tomogram values) (default: None, "
        "needed later by deconv)."
    ),
]
TargetPixelSize = Annotated[
    float | None,
    target_pixel_size_option(
        "Bin every tomogram to this pixel size in Å (Fourier cropping), write "
        "the binned copies (NAME_<size>A.mrc) and list those (default: no binning)."
    ),
]


# ------------------------------------------------------------------------------ command
def prepare(
    inputs: Inputs,
    output: Output,
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    defocus: Defocus = None,
    voltage: Voltage = CTFParams.voltage,
    cs: Cs = CTFParams.cs,
    amplitude_contrast: AmplitudeContrast = CTFParams.amplitude_contrast,
    target_pixel_size: TargetPixelSize = None,
    output_dir: OutputDir = None,
    pixel_size: PixelSize = None,
    overwrite: Overwrite = False,
) -> None:
    """List tomograms in a STAR file (one row each, pixel size from the MRC header),
    optionally binned to a target pixel size."""
    import pandas as pd

    from cryogen import io
    from cryogen.corrupt import check_tilt_range
    from cryogen.io.inputs import find_tomograms
    from cryogen.tomo import bin_factor_for, bin_volume
    from cryogen.tomo.microscope import defocus_angstrom

    io.check_output_path(output, overwrite)
    check_tilt_range(tilt_min, tilt_max)
    same = {  # the columns every row shares
        io.DEFOCUS: None if defocus is None else defocus_angstrom(defocus),
        io.VOLTAGE: float(voltage),
        io.CS: float(cs),
        io.AMPLITUDE_CONTRAST: float(amplitude_contrast),
        io.TILT_MIN: float(tilt_min),
        io.TILT_MAX: float(tilt_max),
        io.DECONV_TOMO_NAME: None,
        io.MASK_NAME: None,
    }
    files = find_tomograms(inputs)
    out_dir = output_dir if output_dir is not None else output.parent
    if target_pixel_size is not None and not out_dir.is_dir():
        raise InputError(f"--output-dir {out_dir} is not an existing folder")
    rows = []
    for i, f in enumerate(files, start=1):
        vol = io.read_volume(f, pixel_size=pixel_size, check_values=False)
        path, voxel = f, vol.voxel_size
        if target_pixel_size is not None:
            try:
                factor = bin_factor_for(vol.voxel_size, target_pixel_size)
            except ValueError as err:
                raise InputError(f"{f}: {err}") from None
            path = io.derived_path(f, f"_{target_pixel_size:g}A", out_dir=out_dir)
            with console.status(f"binning {f.name} by {factor:.3g}"):
                data, actual = bin_volume(vol.data, factor)
            voxel = vol.voxel_size * actual
            io.write_volume(path, data, voxel_size=voxel, overwrite=overwrite)
            console.print(f"wrote {path}  shape {data.shape}  voxel {voxel:.4g} Å")
        name = io.relative_path(path, output.parent)
        rows.append({"rlnIndex": i, io.TOMO_NAME: name, io.PIXEL_SIZE: float(voxel), **same})
    io.write_star(output, pd.DataFrame(rows), overwrite=overwrite)
    console.print(f"wrote {output} ({len(rows)} tomograms)")
