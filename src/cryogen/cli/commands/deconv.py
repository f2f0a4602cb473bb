"""``cryogen deconv``: IsoNet's CTF deconvolution of tomograms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    AmplitudeContrastFromData,
    CsFromData,
    Device,
    OutputDir,
    Overwrite,
    PixelSize,
    VoltageFromData,
    defocus_option,
    output_option,
)

__all__ = ["deconv"]

console = Console()


# ------------------------------------------------------------------------------ options
Input = Annotated[
    Path,
    typer.Argument(
        help="STAR file of tomograms (rlnTomoName, rlnDefocus, ...) or one MRC tomogram.",
        show_default=False,
    ),
]
Output = Annotated[
    Path | None,
    output_option(
        "For a STAR input: the STAR to write (default: update the input STAR in "
        "place). For an MRC input: the deconvolved tomogram (default: NAME_deconv.mrc)."
    ),
]
Snrfalloff = Annotated[
    float,
    typer.Option(
        "--snrfalloff",
        min=0.0,
        help="How fast the assumed SNR falls with frequency (IsoNet's snrfalloff); "
        "larger removes more high frequencies.",
    ),
]
Deconvstrength = Annotated[
    float,
    typer.Option(
        "--deconvstrength",
        help="log10 scale of the assumed SNR (IsoNet's deconvstrength); larger "
        "restores more low-frequency contrast.",
    ),
]
Highpassnyquist = Annotated[
    float,
    typer.Option(
        "--highpassnyquist",
        min=1e-6,
        max=1.0,
        help="Extent of the very-low-frequency high-pass, fraction of Nyquist.",
    ),
]
Defocus = Annotated[
    float | None,
    defocus_option(
        "Defocus, µm underfocus (default: the STAR file's rlnDefocus; required for an MRC input)."
    ),
]
PhaseShift = Annotated[
    float, typer.Option("--phase-shift", help="Phase-plate phase shift, degrees.")
]
Phaseflipped = Annotated[
    bool,
    typer.Option(
        "--phaseflipped/--not-phaseflipped",
        help="The tomograms are already phase-flipped (use |CTF|).",
    ),
]
ChunkSize = Annotated[
    int,
    typer.Option(
        "--chunk-size",
        min=16,
        help="Edge of the cubic chunks processed one at a time, voxels.",
    ),
]
Overlap = Annotated[
    float,
    typer.Option(
        "--overlap",
        min=0.0,
        max=0.9,
        help="Fraction of a chunk shared with its neighbours (IsoNet's overlap_rate).",
    ),
]


# ------------------------------------------------------------------------------ command
def deconv(
    input: Input,
    output: Output = None,
    snrfalloff: Snrfalloff = 1.0,
    deconvstrength: Deconvstrength = 1.0,
    highpassnyquist: Highpassnyquist = 0.02,
    defocus: Defocus = None,
    voltage: VoltageFromData = None,
    cs: CsFromData = None,
    amplitude_contrast: AmplitudeContrastFromData = None,
    phase_shift: PhaseShift = 0.0,
    phaseflipped: Phaseflipped = False,
    chunk_size: ChunkSize = 200,
    overlap: Overlap = 0.25,
    output_dir: OutputDir = None,
    pixel_size: PixelSize = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """IsoNet's CTF deconvolution (Wiener-like filter), chunked for large tomograms;
    records rlnDeconvTomoName in the STAR file."""
    from cryogen.device import pick_device
    from cryogen.io import DECONV_TOMO_NAME
    from cryogen.io.inputs import output_plan
    from cryogen.tomo.files import deconvolve_file
    from cryogen.tomo.microscope import ANGSTROM_PER_UM, tomogram_ctf

    dev = pick_device(device)
    plan = output_plan(input, "_deconv", output=output, output_dir=output_dir)
    ctfs = [
        tomogram_ctf(
            t.source,
            defocus_um=defocus,
            voltage=voltage,
            cs=cs,
            amplitude_contrast=amplitude_contrast,
            phase_shift=phase_shift,
        )
        for t in plan.tasks
    ]
    plan.check(overwrite)
    for t, params in zip(plan.tasks, ctfs, strict=True):
        src = t.source.path
        with console.status(
            f"deconvolving {src.name} (defocus {params.defocus / ANGSTROM_PER_UM:.3g} µm)"
        ):
            deconvolve_file(
                src,
                t.output,
                params,
                pixel_size=pixel_size if pixel_size is not None else t.source.pixel_size,
                device=dev,
                overwrite=overwrite,
                snrfalloff=snrfalloff,
                deconvstrength=deconvstrength,
                highpassnyquist=highpassnyquist,
                phaseflipped=phaseflipped,
                chunk_size=chunk_size,
                overlap=overlap,
            )
        console.print(f"wrote {t.output}")
    star_out = plan.record(DECONV_TOMO_NAME, overwrite)
    if star_out is not None:
        console.print(f"recorded {DECONV_TOMO_NAME} in {star_out}")
