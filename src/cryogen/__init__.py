"""CryoGEN-ET: missing-wedge restoration of cryo-electron tomograms.

The names below load on first use, so that importing the package (and ``cryogen --help``)
does not load PyTorch.
"""

import importlib as _importlib
import os as _os
from typing import Any as _Any

# OpenMP threads that spin while waiting make CPU training ~10x slower when another
# process shares the machine; passive waiting costs nothing measurable otherwise.
# It must be set before torch loads its OpenMP runtime, hence here.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cryogen.errors import CryogenError, InputError, OutputError  # noqa: E402

__version__ = "0.1.0"

#: name -> the module it is loaded from on first use.
_LAZY = {
    "CUBE_ROTATIONS": "cryogen.rotations",
    "EXCLUDED_ROTATIONS": "cryogen.rotations",
    "WEDGE_ROTATIONS": "cryogen.rotations",
    "rotate": "cryogen.rotations",
    "rotate_inverse": "cryogen.rotations",
    "apply_missing_wedge": "cryogen.wedge",
    "kept_fraction": "cryogen.wedge",
    "missing_wedge_mask": "cryogen.wedge",
    "wedge_operator": "cryogen.wedge",
}

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


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cryogen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
