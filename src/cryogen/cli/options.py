"""Every option and choice that more than one command shares, declared once.

A command takes one of these as the type of its parameter (``tilt_min: TiltMin = -60.0``);
an option that only one command has is declared in that command's module.  :data:`FLAGS`
maps the library's parameter names to the flags, so that an error raised in library terms
(``tilt_min``) reaches the user in the command line's (``--tilt-min``), and :data:`ADVICE`
turns an error's ``advice`` into what to type.

Adding a shared option is one entry here (and the parameter in the commands that take it).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

#: library parameter name -> command-line flag (filled by :func:`option`).
FLAGS: dict[str, str] = {}

#: ``CryogenError.advice`` -> the advice printed after the message.
ADVICE: dict[str, str] = {
    "overwrite": "use --overwrite to replace it",
    "resume": "use --resume to continue it or --overwrite to start again",
    "pixel_size": "pass --pixel-size (Å) to give it",
}


def option(param: str, flag: str, *aliases: str, **kwargs: Any) -> Any:
    """``typer.Option(flag, *aliases, **kwargs)``, remembering ``param -> flag``."""
    FLAGS[param] = flag
    return typer.Option(flag, *aliases, **kwargs)


# ------------------------------------------------------------------------------ choices
class PhantomName(str, Enum):
    sphere = "sphere"
    prism = "prism"
    ribosome = "ribosome"
    crowded = "crowded"


class Method(str, Enum):
    cryogen = "cryogen"
    isonet = "isonet"


class Preset(str, Enum):
    cpu = "cpu"
    paper = "paper"


class Protein(str, Enum):
    dark = "dark"
    bright = "bright"


# ------------------------------------------------------------------------------ tilt range
TiltMin = Annotated[
    float, option("tilt_min", "--tilt-min", help="Lowest tilt angle of the tilt series, degrees.")
]
TiltMax = Annotated[
    float, option("tilt_max", "--tilt-max", help="Highest tilt angle of the tilt series, degrees.")
]
#: A tilt range that the data may give (a STAR file, a model): ``None`` = from the data.
TiltMinFromData = Annotated[
    float | None,
    option(
        "tilt_min",
        "--tilt-min",
        help="Lowest tilt angle, degrees (default: from the data: the STAR file's, the model's).",
        show_default=False,
    ),
]
TiltMaxFromData = Annotated[
    float | None,
    option(
        "tilt_max",
        "--tilt-max",
        help="Highest tilt angle, degrees (default: from the data: the STAR file's, the model's).",
        show_default=False,
    ),
]

# ------------------------------------------------------------------------------ files
Overwrite = Annotated[
    bool,
    option("overwrite", "--overwrite", help="Replace existing output files (default: refuse)."),
]
BeamAxis = Annotated[
    str,
    option(
        "beam_axis",
        "--beam-axis",
        help="Axis of the input volume along the beam (the thickness): 'z' (default, "
        "MRC nz) or 'y' (IMOD tilt output without rotation); 'y' is rotated to z.",
    ),
]
PixelSize = Annotated[
    float | None,
    option(
        "pixel_size",
        "--pixel-size",
        help="Voxel size in Å to use instead of the MRC header's (needed when the header "
        "says 0) (default: the header's, or the STAR file's).",
        show_default=False,
    ),
]

# ------------------------------------------------------------------------------ computing
Device = Annotated[
    str,
    option(
        "device",
        "--device",
        help="Compute device: auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.",
    ),
]
Threads = Annotated[
    int | None,
    option(
        "threads",
        "--threads",
        min=1,
        help="CPU threads (default: the command's; see its help).",
        show_default=False,
    ),
]
Seed = Annotated[int, option("seed", "--seed", min=0, help="Random seed.")]
Quiet = Annotated[bool, option("quiet", "--quiet", help="No progress bars.")]

# ------------------------------------------------------------------------------ training
MethodOption = Annotated[
    Method | None,
    option(
        "method",
        "--method",
        help="cryogen (Algorithm 1) or isonet (IsoNet-style baseline); default: the "
        "preset's (cpu: isonet, measured better in 15 CPU minutes; paper: cryogen).",
        show_default=False,
    ),
]
PresetOption = Annotated[
    Preset | None,
    option(
        "preset",
        "--preset",
        help="Default settings: cpu (small networks, minutes on a CPU) or paper (the "
        "paper's networks, for GPUs) (default: cpu, or the config file's).",
        show_default=False,
    ),
]
Steps = Annotated[
    int | None,
    option(
        "steps",
        "--steps",
        min=1,
        help="Training budget in steps (instead of minutes).",
        show_default=False,
    ),
]
Minutes = Annotated[
    float | None,
    option(
        "minutes",
        "--minutes",
        min=0.01,
        help="Training budget in minutes of wall-clock time.",
        show_default=False,
    ),
]
SetValues = Annotated[
    list[str] | None,
    option(
        "set_",
        "--set",
        help="Override any training config field, KEY=VALUE (JSON value), repeatable, "
        "e.g. --set adv_weight=0.01 --set features=[8,16,32].",
        show_default=False,
    ),
]

# ------------------------------------------------------------------------------ CTF
Voltage = Annotated[
    float | None,
    option(
        "voltage",
        "--voltage",
        min=1.0,
        help="Acceleration voltage, kV (default: the STAR file's rlnVoltage, else 300).",
        show_default=False,
    ),
]
Cs = Annotated[
    float | None,
    option(
        "cs",
        "--cs",
        min=0.0,
        help="Spherical aberration, mm (default: the STAR file's rlnSphericalAberration, "
        "else 2.7).",
        show_default=False,
    ),
]
AmplitudeContrast = Annotated[
    float | None,
    option(
        "amplitude_contrast",
        "--amplitude-contrast",
        min=0.0,
        max=1.0,
        help="Amplitude contrast, fraction (default: the STAR file's rlnAmplitudeContrast, "
        "else 0.07 as in IsoNet's deconvolution).",
        show_default=False,
    ),
]
OutputDir = Annotated[
    Path | None,
    option(
        "output_dir",
        "--output-dir",
        help="Folder of the written volumes (default: beside each input tomogram).",
        show_default=False,
    ),
]
