"""``cryogen make-mask``: IsoNet-style sampling masks of tomograms."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    Device,
    OutputDir,
    Overwrite,
    Protein,
    option,
    output_option,
)

__all__ = ["make_mask"]

logger = logging.getLogger(__name__)
console = Console()


# ------------------------------------------------------------------------------ options
Input = Annotated[
    Path,
    typer.Argument(help="STAR file of tomograms or one MRC tomogram.", show_default=False),
]
Output = Annotated[
    Path | None,
    output_option(
        "For a STAR input: the STAR to write (default: update the input STAR in "
        "place). For an MRC input: the mask (default: NAME_mask.mrc)."
    ),
]
DensityPercentage = Annotated[
    float,
    typer.Option(
        "--density-percentage",
        min=0.0,
        max=100.0,
        help="Percentage of voxels kept by the local-density criterion (100: off).",
    ),
]
StdPercentage = Annotated[
    float,
    typer.Option(
        "--std-percentage",
        min=0.0,
        max=100.0,
        help="Percentage of voxels kept by the local-standard-deviation criterion (100: off).",
    ),
]
ZCrop = Annotated[
    float,
    typer.Option(
        "--z-crop",
        min=0.0,
        max=0.99,
        help="Fraction of the slices along z removed, half at the top and half at the "
        "bottom (0.2: 10% each, as IsoNet2).",
    ),
]
PatchSize = Annotated[
    int,
    option(
        "patch_size",
        "--patch-size",
        min=1,
        help="Half-width of the local filters, voxels of the 2x-binned tomogram.",
    ),
]
ProteinLook = Annotated[
    Protein,
    typer.Option(
        "--protein",
        help="How protein looks: dark (low values: cryo-ET tomograms, IsoNet) or "
        "bright (high values: cryogen phantoms and simulations).",
    ),
]
UseDeconv = Annotated[
    bool,
    typer.Option(
        "--use-deconv/--no-use-deconv",
        help="With a STAR input, compute the mask on rlnDeconvTomoName when it exists "
        "(as IsoNet does), else on rlnTomoName.",
    ),
]


# ------------------------------------------------------------------------------ command
def make_mask(
    input: Input,
    output: Output = None,
    density_percentage: DensityPercentage = 50.0,
    std_percentage: StdPercentage = 50.0,
    z_crop: ZCrop = 0.2,
    patch_size: PatchSize = 4,
    protein: ProteinLook = Protein.dark,
    use_deconv: UseDeconv = True,
    output_dir: OutputDir = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """IsoNet-style sampling mask (local density and local standard deviation
    percentages, z-crop); records rlnMaskName in the STAR file."""
    from cryogen.device import pick_device
    from cryogen.io import MASK_NAME
    from cryogen.io.inputs import output_plan, tomogram_file
    from cryogen.tomo.files import mask_file

    dev = pick_device(device)
    plan = output_plan(input, "_mask", output=output, output_dir=output_dir)
    sources = [tomogram_file(t.source, deconvolved=use_deconv) for t in plan.tasks]
    plan.check(overwrite, inputs=sources)
    for t, src in zip(plan.tasks, sources, strict=True):
        with console.status(f"making the mask of {src.name}"):
            cover = mask_file(
                src,
                t.output,
                device=dev,
                overwrite=overwrite,
                density_percentage=density_percentage,
                std_percentage=std_percentage,
                z_crop=z_crop,
                patch_size=patch_size,
                protein=protein.value,
            )
        console.print(f"wrote {t.output}  (covers {cover:.1%} of the tomogram)")
        if cover == 0:
            logger.warning(
                "%s: the mask is empty; loosen --density-percentage/--std-percentage", t.output
            )
    star_out = plan.record(MASK_NAME, overwrite)
    if star_out is not None:
        console.print(f"recorded {MASK_NAME} in {star_out}")
