"""CryoGEN-ET: missing-wedge restoration of cryo-electron tomograms."""

from cryogen.errors import CryogenError, InputError, OutputError
from cryogen.rotations import (
    CUBE_ROTATIONS,
    EXCLUDED_ROTATIONS,
    WEDGE_ROTATIONS,
    rotate,
    rotate_inverse,
)
from cryogen.wedge import apply_missing_wedge, kept_fraction, missing_wedge_mask, wedge_operator

__version__ = "0.1.0"

__all__ = [
    "CUBE_ROTATIONS",
    "EXCLUDED_ROTATIONS",
    "WEDGE_ROTATIONS",
    "CryogenError",
    "InputError",
    "OutputError",
    "apply_missing_wedge",
    "kept_fraction",
    "missing_wedge_mask",
    "rotate",
    "rotate_inverse",
    "wedge_operator",
]
