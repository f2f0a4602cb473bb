"""IMOD tilt-angle files (``.tlt``, ``.rawtlt``): one angle in degrees per line."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryogen.errors import InputError
from cryogen.io.mrc import atomic_output

__all__ = ["read_tlt", "write_tlt"]


def read_tlt(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IMOD ``.tlt`` file.

    Blank lines and lines starting with ``#`` are ignored; every other line must hold one
    finite angle in ``[-90, 90]`` degrees.

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64 angles in degrees, in file order.

    Raises
    ------
    InputError
        The file is missing or unreadable, a line is not one angle (the message gives the
        line number), an angle is outside ``[-90, 90]``, or there are no angles.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: file not found" if not src.exists() else f"{src}: not a file")
    try:
        text = src.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(f"{src}: not a text file of tilt angles") from None
    except OSError as err:
        raise InputError(f"{src}: cannot be read ({err.strerror or err})") from None
    angles: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        fields = item.split()
        try:
            if len(fields) != 1:
                raise ValueError
            angle = float(fields[0])
        except ValueError:
            raise InputError(
                f"{src}, line {number}: {item[:40]!r} is not one tilt angle in degrees"
            ) from None
        if not math.isfinite(angle) or abs(angle) > 90.0:
            raise InputError(
                f"{src}, line {number}: tilt angle {item!r} is outside [-90, 90] degrees"
            )
        angles.append(angle)
    if not angles:
        raise InputError(f"{src}: holds no tilt angles")
    return np.asarray(angles, dtype=np.float64)


def write_tlt(path: str | os.PathLike[str], angles: Any, overwrite: bool = False) -> Path:
    """Write angles (degrees) as an IMOD ``.tlt`` file, one per line, atomically.

    Values are written with Python's shortest exact representation, so ``read_tlt``
    returns them bit for bit.

    Parameters
    ----------
    path
        Output file; refused if it exists unless ``overwrite`` (``OutputError``).
    angles
        ``(n_tilts,)`` finite angles in ``[-90, 90]`` degrees.

    Returns
    -------
    Path
        The written file.
    """
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"angles must be a non-empty 1D sequence, got shape {arr.shape}")
    if not np.isfinite(arr).all() or np.abs(arr).max() > 90.0:
        raise ValueError("tilt angles must be finite and within [-90, 90] degrees")
    text = "".join(f"{float(a)!r}\n" for a in arr)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
