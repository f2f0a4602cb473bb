"""``cryogen show``: central real-space and Fourier slices of volumes as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    BeamAxis,
    Overwrite,
    check_beam_axis,
    output_option,
    tilt_max_option,
    tilt_min_option,
)
from cryogen.errors import InputError

__all__ = ["show"]

console = Console()


# ------------------------------------------------------------------------------ options
Volumes = Annotated[
    list[Path],
    typer.Argument(
        help="One or more volumes (MRC); a name ending in _std (cryogen predict --samples) is "
        "shown as a standard deviation map.",
    ),
]
Output = Annotated[Path, output_option("Output PNG file.")]
TiltMin = Annotated[
    float | None,
    tilt_min_option(
        "Lowest tilt angle, degrees, of the wedge drawn on the Fourier panels (default: the "
        "first volume's .tlt/.aln beside it, else -60, marked as assumed)."
    ),
]
TiltMax = Annotated[
    float | None,
    tilt_max_option("Highest tilt angle, degrees (default: as --tilt-min, else 60)."),
]


# ------------------------------------------------------------------------------ command
def show(
    volumes: Volumes,
    output: Output,
    tilt_min: TiltMin = None,
    tilt_max: TiltMax = None,
    beam_axis: BeamAxis = "z",
    overwrite: Overwrite = False,
) -> None:
    """Central XY, XZ, YZ slices and central Fourier slices, one column per volume, each
    with its own contrast and colour bars; the wedge's edges drawn on F(kx,kz). Prints each
    volume's share of power in the missing wedge (about 0 before correction)."""
    from cryogen.figures import is_std_map, ortho_and_fourier_figure, wedge_power
    from cryogen.io import check_output_path, read_volume
    from cryogen.io.inputs import tilt_ranges, tomogram_sources

    check_output_path(output, overwrite)
    if output.suffix.lower() != ".png":
        raise InputError(f"{output}: the figure is written as PNG; use a .png name")
    vols = [
        read_volume(p, beam_axis=check_beam_axis(beam_axis), check_values=False) for p in volumes
    ]
    (tilt,) = tilt_ranges(tomogram_sources(volumes[:1])[0], tilt_min=tilt_min, tilt_max=tilt_max)
    label = f"tilt range {tilt.tilt_min:+g}/{tilt.tilt_max:+g} deg"
    ortho_and_fourier_figure(
        [v.data for v in vols],
        [p.name for p in volumes],
        output,
        voxel_size=[float(v.voxel_size) for v in vols],
        std_maps=[is_std_map(p) for p in volumes],
        tilt_range=(tilt.tilt_min, tilt.tilt_max),
        tilt_label=label + (" (assumed)" if tilt.default else ""),
    )
    for path, v, std in zip(volumes, vols, (is_std_map(p) for p in volumes), strict=True):
        if not std:
            share = wedge_power(v.data, tilt.tilt_min, tilt.tilt_max)
            console.print(f"{path.name}: {100 * share:.2f} % of its power in the missing wedge")
    console.print(f"wrote {output}")
