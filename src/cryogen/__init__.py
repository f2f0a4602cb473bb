"""CryoGEN-ET: missing-wedge restoration of cryo-electron tomograms."""

import os as _os

# OpenMP threads that spin while waiting make CPU training ~10x slower when another
# process shares the machine; passive waiting costs nothing measurable otherwise.
# It must be set before torch loads its OpenMP runtime, hence here.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
