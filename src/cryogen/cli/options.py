"""Every option and choice that more than one command shares, declared once.

A command takes one of these as the type of its parameter (``tilt_min: TiltMin = -60.0``);
an option that only one command has is declared in that command's module.  :data:`FLAGS`
maps the library's parameter names to the flags, so that an error raised in library terms
(``tilt_min``) reaches the user in the command line's (``--tilt-min``), and :data:`ADVICE`
turns an error's ``advice`` into what to type.

Adding a shared option is one entry here (and the parameter in the commands that take it).
Options that several commands take with a help of their own (``--output``, ``--minutes``,
``--steps``, a ``--tilt-min`` the data may give, ``--defocus``, ``--target-pixel-size``) are
made by a function here that takes the help: flag, library name and bounds stay here.  The checks of
shared options that the command line makes itself (:func:`check_beam_axis`,
:func:`parse_set_options` for ``--set``) are here too.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cryogen.errors import InputError
from cryogen.phantoms import PHANTOM_NAMES

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
#: The phantoms of :data:`cryogen.phantoms.PHANTOMS`, in the registry's order (built from
#: the registry, so mypy cannot list the members).
PhantomName = Enum(  # type: ignore[misc]
    "PhantomName", [(name, name) for name in PHANTOM_NAMES], type=str
)


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
#: The tilt range of each tomogram as the data record it (``None``: from the data).
TiltMinFromData = Annotated[
    float | None,
    option(
        "tilt_min",
        "--tilt-min",
        help="Lowest tilt angle, degrees, for every tomogram (default: each tomogram's own: "
        "its STAR row, its RELION-5 tilt-series STAR file, or its .tlt/.aln file, given with "
        "--tlt or found beside it; -60 with a warning where none records it).",
        show_default=False,
    ),
]
TiltMaxFromData = Annotated[
    float | None,
    option(
        "tilt_max",
        "--tilt-max",
        help="Highest tilt angle, degrees (default: as --tilt-min; 60 with a warning).",
        show_default=False,
    ),
]
TiltFiles = Annotated[
    list[Path] | None,
    option(
        "tilt_files",
        "--tlt",
        help="Tilt angles of the tomograms (IMOD .tlt, AreTomo .aln): one file for all, or "
        "one per tomogram in order, repeatable (default: NAME.tlt or NAME.aln beside each).",
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
        help="CPU threads (default: every CPU this process may use, or OMP_NUM_THREADS when set).",
        show_default=False,
    ),
]
Seed = Annotated[int, option("seed", "--seed", min=0, help="Random seed.")]
NoiseSeed = Annotated[int, option("seed", "--seed", help="Random seed of the noise.")]
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
#: The microscope's defaults (kV, mm, fraction): :class:`cryogen.tomo.CTFParams`'s, repeated
#: here so that the commands' help loads no torch (a test checks that they agree).
DEFAULT_VOLTAGE, DEFAULT_CS, DEFAULT_AMPLITUDE_CONTRAST = 300.0, 2.7, 0.07
Voltage = Annotated[
    float, option("voltage", "--voltage", min=1.0, help="Acceleration voltage, kV.")
]
Cs = Annotated[float, option("cs", "--cs", min=0.0, help="Spherical aberration, mm.")]
AmplitudeContrast = Annotated[
    float,
    option(
        "amplitude_contrast",
        "--amplitude-contrast",
        min=0.0,
        max=1.0,
        help="Amplitude contrast, fraction.",
    ),
]
#: The CTF of the tomograms of a STAR file: ``None`` = the STAR file's, else the default.
VoltageFromData = Annotated[
    float | None,
    option(
        "voltage",
        "--voltage",
        min=1.0,
        help="Acceleration voltage, kV (default: the STAR file's rlnVoltage, else 300).",
        show_default=False,
    ),
]
CsFromData = Annotated[
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
AmplitudeContrastFromData = Annotated[
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

# ------------------------------------------------------------------------------ output
OutputDir = Annotated[
    Path | None,
    option(
        "output_dir",
        "--output-dir",
        help="Folder of the written volumes (default: beside each input tomogram).",
        show_default=False,
    ),
]


# ------------------------------------------------------------------------------ own help
# Options that several commands take with a help of their own (what the output is, what
# the defocus is used for): the flag, the library's name and the bounds are declared here.
def output_option(help: str) -> Any:
    """``--output``/``-o`` with a command's help (what it writes, its default)."""
    return option("output", "--output", "-o", help=help, show_default=False)


def defocus_option(help: str) -> Any:
    """``--defocus``, µm underfocus (the library's ``defocus_um``), with a command's help."""
    return option("defocus_um", "--defocus", min=0.0, help=help, show_default=False)


def minutes_option(help: str) -> Any:
    """``--minutes``, a training budget in minutes of wall-clock time, with a command's help."""
    return option("minutes", "--minutes", min=0.01, help=help)


def steps_option(help: str) -> Any:
    """``--steps``, a training budget in steps, with a command's help."""
    return option("steps", "--steps", min=1, help=help, show_default=False)


def tilt_min_option(help: str) -> Any:
    """``--tilt-min`` that the data may give (``None``: from the data), with a command's help."""
    return option("tilt_min", "--tilt-min", help=help, show_default=False)


def tilt_max_option(help: str) -> Any:
    """``--tilt-max`` that the data may give (``None``: from the data), with a command's help."""
    return option("tilt_max", "--tilt-max", help=help, show_default=False)


def target_pixel_size_option(help: str) -> Any:
    """``--target-pixel-size``, Å to bin to, with a command's help."""
    return option(
        "target_pixel_size", "--target-pixel-size", min=0.01, help=help, show_default=False
    )


# ------------------------------------------------------------------------------ checks
def check_beam_axis(beam_axis: str) -> str:
    """``beam_axis`` if it is ``"z"`` or ``"y"``; checked before any file is read."""
    if beam_axis not in ("z", "y"):
        raise InputError(f"--beam-axis must be 'z' or 'y', got {beam_axis!r}")
    return beam_axis


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``--set`` values -> dict: ``["adv_weight=0.01", "features=[8,16]"]`` ->
    ``{"adv_weight": 0.01, "features": [8, 16]}``; values are parsed as JSON when they can
    be, else kept as strings; ``-`` in a key becomes ``_``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        key, _, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out
