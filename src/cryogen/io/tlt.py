"""Tilt-angle files: IMOD ``.tlt`` / ``.rawtlt`` (one angle in degrees per line) and
AreTomo's ``.aln`` alignment files (the ``TILT`` column of the global alignment).

:func:`find_tilt_file` finds the angles of a tomogram beside it, as IMOD and AreTomo leave
them (``TS_01.rec`` -> ``TS_01.tlt``; AreTomo3's ``TS_01_Vol.mrc`` -> ``TS_01.aln``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryogen.errors import InputError
from cryogen.io.mrc import atomic_output

__all__ = [
    "RECONSTRUCTION_SUFFIXES",
    "TILT_FILE_SUFFIXES",
    "find_tilt_file",
    "read_aln",
    "read_tilt_angles",
    "read_tlt",
    "write_tlt",
]

#: The files of tilt angles, in the order :func:`find_tilt_file` looks for them.
TILT_FILE_SUFFIXES = (".tlt", ".aln")
#: Endings of a tomogram's name that its tilt series' name does not have (IMOD's ``_rec``,
#: AreTomo3's ``_Vol``, IsoNet2's averaged ``_full``, half-sets), removed one at a time.
RECONSTRUCTION_SUFFIXES = (
    "_rec",
    "_full",
    "_vol",
    "_even",
    "_odd",
    "_evn",
    "_half1",
    "_half2",
)


def _read_text(src: Path) -> str:
    if not src.is_file():
        raise InputError(f"{src}: file not found" if not src.exists() else f"{src}: not a file")
    try:
        return src.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(f"{src}: not a text file of tilt angles") from None
    except OSError as err:
        raise InputError(f"{src}: cannot be read ({err.strerror or err})") from None


def _checked_angle(angle: float, src: Path, number: int, item: str) -> float:
    if not math.isfinite(angle) or abs(angle) > 90.0:
        raise InputError(f"{src}, line {number}: tilt angle {item!r} is outside [-90, 90] degrees")
    return angle


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
    text = _read_text(src)
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
        angles.append(_checked_angle(angle, src, number, item))
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


def read_aln(path: str | os.PathLike[str]) -> np.ndarray:
    """The tilt angles of an AreTomo ``.aln`` alignment file.

    The global alignment table (after the ``# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT``
    header, up to ``# Local Alignment``) holds one row per kept tilt, the refined angle in
    its last column; tilts AreTomo excluded (``# DarkFrame``) are not among them.

    Returns
    -------
    np.ndarray
        ``(n_tilts,)`` float64 angles in degrees, in file order.

    Raises
    ------
    InputError
        The file is missing or unreadable, has no global alignment table, a row is not ten
        numbers, or an angle is outside ``[-90, 90]``.
    """
    src = Path(path)
    text = _read_text(src)
    angles: list[float] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.strip()
        if item.startswith("#"):
            words = item.lstrip("#").split()
            if words[:2] == ["SEC", "ROT"]:
                in_table = True
            elif in_table and words[:1] == ["Local"]:
                break
            continue
        if not in_table or not item:
            continue
        fields = item.split()
        try:
            if len(fields) != 10:
                raise ValueError
            angle = [float(f) for f in fields][-1]
        except ValueError:
            raise InputError(
                f"{src}, line {number}: {item[:40]!r} is not a row of AreTomo's alignment "
                "(ten numbers, the tilt angle last)"
            ) from None
        angles.append(_checked_angle(angle, src, number, item))
    if not angles:
        raise InputError(f"{src}: no AreTomo alignment table (# SEC ROT ... TILT) found")
    return np.asarray(angles, dtype=np.float64)


def read_tilt_angles(path: str | os.PathLike[str]) -> np.ndarray:
    """The tilt angles (degrees) of an IMOD ``.tlt``/``.rawtlt`` or an AreTomo ``.aln`` file,
    chosen by the file's extension (anything but ``.aln`` is read as IMOD's)."""
    if Path(path).suffix.lower() == ".aln":
        return read_aln(path)
    return read_tlt(path)


def find_tilt_file(tomogram: str | os.PathLike[str]) -> Path | None:
    """The tilt angles of a tomogram, beside it: ``NAME.tlt`` or ``NAME.aln`` for a tomogram
    ``NAME.mrc``, also with a reconstruction ending removed from the name
    (:data:`RECONSTRUCTION_SUFFIXES`: ``TS_01_rec.mrc`` -> ``TS_01.tlt``, AreTomo3's
    ``TS_01_Vol.mrc`` -> ``TS_01.aln``); ``None`` when there is none."""
    src = Path(tomogram)
    stems = [src.stem]
    stem = src.stem
    while True:
        cut = next((s for s in RECONSTRUCTION_SUFFIXES if stem.lower().endswith(s)), None)
        if cut is None or len(stem) <= len(cut):
            break
        stem = stem[: -len(cut)]
        stems.append(stem)
    for name in stems:
        for suffix in TILT_FILE_SUFFIXES:
            candidate = src.with_name(name + suffix)
            if candidate.is_file():
                return candidate
    return None
