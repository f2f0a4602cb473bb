"""``cryogen phantom``: write a benchmark phantom as an MRC volume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    Overwrite,
    PhantomName,
    output_option,
)
from cryogen.phantoms import PHANTOMS

__all__ = ["phantom"]

console = Console()


# ------------------------------------------------------------------------------ options
Name = Annotated[PhantomName, typer.Argument(help="Which phantom to build.")]
Output = Annotated[Path, output_option("Output MRC file.")]
_SIZES = ", ".join(
    f"{p.name} {p.size if p.size is not None else 'fits the object'}" for p in PHANTOMS.values()
)
_PIXELS = ", ".join(f"{p.name} {p.pixel_size:g}" for p in PHANTOMS.values())
Size = Annotated[
    int | None,
    typer.Option("--size", min=8, help=f"Edge length in voxels (default: {_SIZES})."),
]
PhantomPixelSize = Annotated[
    float | None,
    typer.Option("--pixel-size", min=0.1, help=f"Voxel size in Å (default: {_PIXELS})."),
]
PhantomSeed = Annotated[
    int, typer.Option("--seed", min=0, help="Random seed (prism orientation, crowded scene).")
]


# ------------------------------------------------------------------------------ command
def phantom(
    name: Name,
    output: Output,
    size: Size = None,
    pixel_size: PhantomPixelSize = None,
    seed: PhantomSeed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Write a benchmark phantom (appendix A.7 of the paper) as an MRC volume."""
    from cryogen.io import check_output_path, write_volume
    from cryogen.phantoms import make_phantom

    check_output_path(output, overwrite)
    with console.status(f"building the {name.value} phantom"):
        vol, voxel = make_phantom(name.value, size=size, pixel_size=pixel_size, seed=seed)
    write_volume(output, vol.numpy(), voxel_size=voxel, overwrite=overwrite)
    console.print(f"wrote {output}  shape {tuple(vol.shape)}  voxel size {voxel:g} Å")
