"""Every option and choice that more than one command shares, declared once.

A command takes one of these as the type of its parameter (``tilt_min: TiltMin = -60.0``).
:data:`FLAGS` maps the library's parameter names to the flags, so that an error raised in
library terms (``tilt_min``) reaches the user in the command line's (``--tilt-min``), and
:data:`ADVICE` turns an error's ``advice`` into what to type.
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


class PhantomName(str, Enum):
    sphere = "sphere"
    prism = "prism"
    ribosome = "ribosome"
    crowded = "crowded"


class BeamAxisName(str, Enum):
    z = "z"
    y = "y"


TiltMin = Annotated[
    float, option("tilt_min", "--tilt-min", help="Lowest tilt angle of the tilt series, degrees.")
]
TiltMax = Annotated[
    float, option("tilt_max", "--tilt-max", help="Highest tilt angle of the tilt series, degrees.")
]
Overwrite = Annotated[
    bool, option("overwrite", "--overwrite", help="Replace existing output files.")
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
        help="Voxel size in Å to use instead of the MRC header's (needed when the header says 0).",
    ),
]
Output = Annotated[Path, option("output", "--output", "-o", help="Output file.")]
