"""``cryogen simulate``: project a volume into an IMOD-style tilt series."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    DEFAULT_AMPLITUDE_CONTRAST,
    DEFAULT_CS,
    DEFAULT_VOLTAGE,
    AmplitudeContrast,
    Cs,
    Device,
    NoiseSeed,
    Overwrite,
    PixelSize,
    TiltMax,
    TiltMin,
    Voltage,
    defocus_option,
    output_option,
)
from cryogen.errors import InputError

__all__ = ["simulate"]

console = Console()


# ------------------------------------------------------------------------------ options
Volume = Annotated[
    Path, typer.Argument(help="Volume to image (MRC), beam along z.", show_default=False)
]
Output = Annotated[
    Path,
    output_option(
        "Tilt series to write (MRC, images (n_tilts, y, x)); the angles go to "
        "the same name with .tlt."
    ),
]
TiltStep = Annotated[
    float,
    typer.Option(
        "--tilt-step",
        min=0.01,
        help="Tilt increment, degrees (the last step may be shorter).",
    ),
]
Dose = Annotated[
    float | None,
    typer.Option(
        "--dose",
        min=1e-6,
        help="Total electron dose of the series, e⁻/Å², split evenly between the "
        "tilts: adds Poisson shot noise (image contrast 10%) (default: no shot noise).",
        show_default=False,
    ),
]
Snr = Annotated[
    float | None,
    typer.Option(
        "--snr",
        min=1e-6,
        help="Add Gaussian noise: variance of the noise-free series over this value "
        "(default: no Gaussian noise).",
        show_default=False,
    ),
]
Halves = Annotated[
    bool,
    typer.Option(
        "--halves",
        help="Write the even-frame and the odd-frame tilt series (OUTPUT_even, OUTPUT_odd, "
        "each with its .tlt) instead of one: every tilt's exposure split into two, each "
        "half with half the dose (or twice the noise variance with --snr) and its own "
        "noise. Needs --dose or --snr. Reconstruct each for training on half-sets.",
    ),
]
Defocus = Annotated[
    float | None,
    defocus_option("Apply the CTF of this defocus, µm underfocus (default: no CTF)."),
]


# ------------------------------------------------------------------------------ command
def simulate(
    volume: Volume,
    output: Output,
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    tilt_step: TiltStep = 3.0,
    dose: Dose = None,
    snr: Snr = None,
    halves: Halves = False,
    defocus: Defocus = None,
    voltage: Voltage = DEFAULT_VOLTAGE,
    cs: Cs = DEFAULT_CS,
    amplitude_contrast: AmplitudeContrast = DEFAULT_AMPLITUDE_CONTRAST,
    seed: NoiseSeed = 0,
    pixel_size: PixelSize = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Project a volume over a tilt scheme into an IMOD-style tilt series (TS.mrc + TS.tlt),
    optionally with the CTF and noise: a missing wedge made the way a microscope makes it."""
    import torch

    from cryogen.corrupt import check_tilt_range
    from cryogen.device import pick_device
    from cryogen.io import check_output_path, derived_path, read_volume, write_tlt, write_volume
    from cryogen.tomo import CTFParams, simulate_half_tilt_series, simulate_tilt_series, tilt_angles
    from cryogen.tomo.microscope import defocus_angstrom

    if halves and dose is None and snr is None:
        raise InputError("--halves needs noise: give --dose or --snr")
    outputs = [derived_path(output, "_even"), derived_path(output, "_odd")] if halves else [output]
    tlts = [derived_path(o, "", ".tlt") for o in outputs]
    for path in (*outputs, *tlts):
        check_output_path(path, overwrite, inputs=[volume])
    check_tilt_range(tilt_min, tilt_max)
    vol = read_volume(volume, pixel_size=pixel_size)
    if min(vol.shape[0], vol.shape[2]) < 2:
        raise InputError(f"{volume}: shape {vol.shape} is too thin to project")
    angles = tilt_angles(tilt_min, tilt_max, tilt_step)
    params = None
    if defocus is not None:
        params = CTFParams(defocus_angstrom(defocus), voltage, cs, amplitude_contrast)
    x = torch.from_numpy(vol.load()).to(pick_device(device))
    make = simulate_half_tilt_series if halves else simulate_tilt_series
    with console.status(f"projecting {len(angles)} tilts"):
        made = make(
            x, angles, pixel_size=vol.voxel_size, ctf_params=params, dose=dose, snr=snr, seed=seed
        )
    series = list(made) if isinstance(made, tuple) else [made]
    for path, tlt, ts in zip(outputs, tlts, series, strict=True):
        write_volume(
            path, ts.cpu().numpy(), voxel_size=vol.voxel_size, overwrite=overwrite,
            image_stack=True,
        )  # fmt: skip
        write_tlt(tlt, angles, overwrite=overwrite)
    extras = [
        f"CTF at {defocus:g} µm" if params is not None else "",
        f"dose {dose:g} e/Å²" if dose is not None else "",
        f"SNR {snr:g}" if snr is not None else "",
        "even and odd frames" if halves else "",
    ]
    note = ", ".join(e for e in extras if e)
    shape = series[0].shape
    console.print(
        f"wrote {' and '.join(map(str, outputs))} ({len(angles)} tilts "
        f"{angles[0]:g}..{angles[-1]:g} deg, images {shape[1]}x{shape[2]})"
        f"{f' ({note})' if note else ''} and {' and '.join(map(str, tlts))}"
    )
