"""``cryogen corrupt``: remove the missing wedge of a tilt range from a volume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    BeamAxis,
    NoiseSeed,
    Overwrite,
    PixelSize,
    TiltMax,
    TiltMin,
    check_beam_axis,
    output_option,
)
from cryogen.errors import InputError

__all__ = ["corrupt"]

console = Console()


# ------------------------------------------------------------------------------ options
Input = Annotated[Path, typer.Argument(help="Clean volume (MRC).")]
Output = Annotated[Path, output_option("Output MRC file.")]
Snr = Annotated[
    float | None,
    typer.Option(
        "--snr",
        min=1e-6,
        help="Add Gaussian noise inside the measured region so that signal variance over "
        "noise variance equals this value in the output (default: no noise).",
    ),
]
SoftEdge = Annotated[
    float, typer.Option("--soft-edge", min=0.0, help="Soft wedge edge width, Fourier pixels.")
]
Halves = Annotated[
    bool,
    typer.Option(
        "--halves",
        help="Also write two half-sets, OUT_half1.mrc and OUT_half2.mrc: the same wedged "
        "volume with independent noise, each with twice the noise variance, so that their "
        "mean (written as OUT) has the --snr asked for, as the even and odd frames of one "
        "acquisition would (needs --snr).",
    ),
]


# ------------------------------------------------------------------------------ command
def corrupt(
    input: Input,
    output: Output,
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    snr: Snr = None,
    soft_edge: SoftEdge = 0.0,
    seed: NoiseSeed = 0,
    beam_axis: BeamAxis = "z",
    pixel_size: PixelSize = None,
    halves: Halves = False,
    overwrite: Overwrite = False,
) -> None:
    """Remove the missing wedge of a tilt range from a volume (T_M), optionally add noise."""
    import torch

    from cryogen.corrupt import check_tilt_range, corrupt_halves
    from cryogen.corrupt import corrupt as corrupt_volume
    from cryogen.io import check_output_path, derived_path, read_volume, write_volume

    if halves and snr is None:
        raise InputError("--halves needs --snr: half-sets differ only by their noise")
    outputs = [output]
    if halves:
        outputs += [derived_path(output, f"_half{h}", output.suffix or ".mrc") for h in (1, 2)]
    for out in outputs:
        check_output_path(out, overwrite, inputs=[input])
    check_tilt_range(tilt_min, tilt_max)
    vol = read_volume(input, beam_axis=check_beam_axis(beam_axis), pixel_size=pixel_size)
    x = torch.from_numpy(vol.load()).to(torch.float32)
    if halves:
        h1, h2 = corrupt_halves(x, tilt_min, tilt_max, snr=snr, seed=seed, soft_edge=soft_edge)
        volumes = [0.5 * (h1 + h2), h1, h2]
    else:
        volumes = [corrupt_volume(x, tilt_min, tilt_max, snr=snr, seed=seed, soft_edge=soft_edge)]
    for out, y in zip(outputs, volumes, strict=True):
        write_volume(
            out, y.numpy(), voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
        )
    extra = f", SNR {snr:g}" if snr is not None else ""
    shown = " and ".join(str(o) for o in outputs)
    console.print(f"wrote {shown}  wedge [{tilt_min:g}, {tilt_max:g}] deg{extra}")
