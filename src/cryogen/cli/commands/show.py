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
)
from cryogen.errors import InputError

__all__ = ["show"]

console = Console()


# ------------------------------------------------------------------------------ options
Volumes = Annotated[list[Path], typer.Argument(help="One or more volumes (MRC).")]
Output = Annotated[Path, output_option("Output PNG file.")]


# ------------------------------------------------------------------------------ command
def show(
    volumes: Volumes,
    output: Output,
    beam_axis: BeamAxis = "z",
    overwrite: Overwrite = False,
) -> None:
    """Central XY, XZ, YZ slices and central Fourier slices, one column per volume."""
    from cryogen.figures import ortho_and_fourier_figure
    from cryogen.io import check_output_path, read_volume

    check_output_path(output, overwrite)
    if output.suffix.lower() != ".png":
        raise InputError(f"{output}: the figure is written as PNG; use a .png name")
    vols = [
        read_volume(p, beam_axis=check_beam_axis(beam_axis), check_values=False) for p in volumes
    ]
    ortho_and_fourier_figure(
        [v.data for v in vols], [p.name for p in volumes], output, voxel_size=vols[0].voxel_size
    )
    console.print(f"wrote {output}")
