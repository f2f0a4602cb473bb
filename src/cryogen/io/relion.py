"""The tilt angles of a RELION-5 tilt series.

A RELION-5 ``tomograms.star`` names, per tomogram, a STAR file of its tilt series
(``rlnTomoTiltSeriesStarFile``) with one row per tilt image; RELION-4 kept that table as a
data block named after the tomogram (``data_TS_01``) in the same file.  The angle of a tilt
is its aligned tilt about the tilt axis, ``rlnTomoYTilt``, the angle the tomogram was
reconstructed with (as IMOD's ``.tlt`` after alignment), else the microscope's stage angle,
``rlnTomoNominalStageTiltAngle``.  Tilts removed from the series are not in the table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile

from cryogen.errors import InputError

__all__ = ["NOMINAL_TILT", "TILT_COLUMNS", "TILT_SERIES_STAR", "Y_TILT", "tilt_series_angles"]

TILT_SERIES_STAR = "rlnTomoTiltSeriesStarFile"
#: The aligned tilt angle about the tilt axis, degrees.
Y_TILT = "rlnTomoYTilt"
#: The stage's tilt angle as the microscope recorded it, degrees.
NOMINAL_TILT = "rlnTomoNominalStageTiltAngle"
#: The columns of tilt angles, in the order they are used.
TILT_COLUMNS = (Y_TILT, NOMINAL_TILT)


def _blocks(src: Path) -> dict[str, pd.DataFrame]:
    if not src.is_file():
        raise InputError(f"{src}: file not found" if not src.exists() else f"{src}: not a file")
    try:
        data: Any = starfile.read(src, always_dict=True)
    except Exception as err:  # noqa: BLE001 - starfile raises many kinds on bad input
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"{src}: not a readable STAR file ({reason})") from None
    if not isinstance(data, Mapping):  # pragma: no cover - always_dict gives a dict
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, pd.DataFrame)}


def tilt_series_angles(
    path: str | os.PathLike[str], name: str | None = None, *, required: bool = True
) -> tuple[np.ndarray, str] | None:
    """The tilt angles of one tilt series in a STAR file.

    Parameters
    ----------
    path
        A RELION-5 tilt-series STAR file, or a ``tomograms.star`` with a block per tomogram.
    name
        The tomogram's ``rlnTomoName``: its block ``data_<name>`` is used when there is one,
        else the first block with a column of tilt angles (:data:`TILT_COLUMNS`).
    required
        Without it, a file with no such block gives ``None`` instead of an error.

    Returns
    -------
    (angles, column) or None
        ``(n_tilts,)`` float64 degrees and the column they come from.

    Raises
    ------
    InputError
        The file is missing or not a STAR file, no block holds tilt angles (with
        ``required``), or an angle is not a number in ``[-90, 90]``.
    """
    src = Path(path)
    blocks = _blocks(src)
    with_angles = {k: v for k, v in blocks.items() if any(c in v.columns for c in TILT_COLUMNS)}
    frame = with_angles.get(name) if name is not None else None
    if frame is None and name is not None and not required:
        return None  # a tomograms.star without this tomogram's block
    if frame is None:
        frame = next(iter(with_angles.values()), None)
    if frame is None:
        if not required:
            return None
        wanted = " or ".join(TILT_COLUMNS)
        raise InputError(f"{src}: no tilt angles ({wanted}) found")
    column = next(c for c in TILT_COLUMNS if c in frame.columns)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = [i for i, v in enumerate(values) if not (math.isfinite(v) and abs(v) <= 90.0)]
    if bad:
        raise InputError(
            f"{src}: {column} of tilt {bad[0] + 1} ({frame[column].iloc[bad[0]]!r}) is not an "
            "angle in [-90, 90] degrees"
        )
    if values.size == 0:
        raise InputError(f"{src}: the tilt series lists no tilts")
    return values, column
