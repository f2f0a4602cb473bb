"""STAR lists of tomograms with the RELION-5 / IsoNet2 column names.

IsoNet2's ``tomograms.star`` (one ``data_`` block, one row per tomogram) is read as is:
``rlnTomoName`` holds the tomogram's file, missing values are written ``None``.  A RELION-5
``tomograms.star``, whose ``rlnTomoName`` is a bare name, is understood through its
``rlnTomoReconstructedTomogram`` column, and its tilt angles through the tilt-series STAR
files it names (:mod:`cryogen.io.relion`).  Relative paths start from the project directory
as RELION reads them, or from the STAR file's folder (:mod:`cryogen.io.star_paths`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from cryogen.errors import InputError
from cryogen.io.files import atomic_output
from cryogen.io.relion import TILT_SERIES_STAR, tilt_series_angles
from cryogen.io.star_paths import (
    relative_path,
    resolve_star_path,
    star_path_candidates,
)

__all__ = [
    "AMPLITUDE_CONTRAST",
    "CORRECTED_TOMO_NAME",
    "CS",
    "DECONV_TOMO_NAME",
    "DEFOCUS",
    "HALF1",
    "HALF2",
    "MASK_NAME",
    "PIXEL_SIZE",
    "RECONSTRUCTED_TOMOGRAM",
    "TILT_MAX",
    "TILT_MIN",
    "TILT_SERIES_STAR",
    "TOMO_NAME",
    "VOLTAGE",
    "TomogramEntry",
    "is_star",
    "read_star",
    "rebase_paths",
    "relative_path",
    "star_entries",
    "tomograms_from_star",
    "update_star_column",
    "write_star",
]

TOMO_NAME = "rlnTomoName"
PIXEL_SIZE = "rlnPixelSize"  # Å
DEFOCUS = "rlnDefocus"  # Å (IsoNet2)
VOLTAGE = "rlnVoltage"  # kV
CS = "rlnSphericalAberration"  # mm
AMPLITUDE_CONTRAST = "rlnAmplitudeContrast"
TILT_MIN = "rlnTiltMin"  # degrees
TILT_MAX = "rlnTiltMax"  # degrees
MASK_NAME = "rlnMaskName"
DECONV_TOMO_NAME = "rlnDeconvTomoName"
CORRECTED_TOMO_NAME = "rlnCorrectedTomoName"
#: IsoNet2 noise2noise halves (even/odd frames or tilts).
HALF1 = "rlnTomoReconstructedTomogramHalf1"
HALF2 = "rlnTomoReconstructedTomogramHalf2"
#: RELION-5: the tomogram's file when ``rlnTomoName`` is only a name.
RECONSTRUCTED_TOMOGRAM = "rlnTomoReconstructedTomogram"

_PATH_COLUMNS = [
    TOMO_NAME,
    MASK_NAME,
    DECONV_TOMO_NAME,
    CORRECTED_TOMO_NAME,
    HALF1,
    HALF2,
    RECONSTRUCTED_TOMOGRAM,
    TILT_SERIES_STAR,
]
_NUMBER_COLUMNS = [PIXEL_SIZE, DEFOCUS, VOLTAGE, CS, AMPLITUDE_CONTRAST, TILT_MIN, TILT_MAX]
_MISSING = {"", "none", "<na>", "nan", "null"}


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _MISSING


def _pick_block(src: Path, data: Any, block: str | None) -> pd.DataFrame:
    """The DataFrame of ``block``, else the block with ``rlnTomoName``, else the first."""
    if isinstance(data, pd.DataFrame):
        blocks: dict[str, Any] = {"": data}
    elif isinstance(data, Mapping):
        blocks = dict(data)
    else:  # pragma: no cover - starfile returns one of the above
        raise InputError(f"{src}: not a readable STAR file")
    if not blocks:
        raise InputError(f"{src}: not a STAR file (no data block found)")
    # a block of "_rlnX value" pairs comes back as a dict of values: make it one row
    if blocks and all(not isinstance(v, (pd.DataFrame, Mapping)) for v in blocks.values()):
        blocks = {"": pd.DataFrame([blocks])}
    frames = {
        name: (v if isinstance(v, pd.DataFrame) else pd.DataFrame([dict(v)]))
        for name, v in blocks.items()
    }
    if block is not None:
        if block not in frames:
            raise InputError(f"{src}: no data block 'data_{block}' (blocks: {sorted(frames)})")
        return frames[block]
    for frame in frames.values():
        if TOMO_NAME in frame.columns:
            return frame
    return next(iter(frames.values()))


def read_star(path: str | os.PathLike[str], *, block: str | None = None) -> pd.DataFrame:
    """Read one data block of a STAR file as a DataFrame.

    With several blocks, the one named ``block`` (without ``data_``) is returned, or by
    default the first containing ``rlnTomoName``, else the first.  Name and path columns
    stay strings (a tomogram named ``01`` is not turned into the number 1); missing values
    (``None``, ``<NA>``, empty) become ``None`` in text columns and NaN in the known number
    columns (``rlnPixelSize``, ``rlnDefocus``, ``rlnTiltMin``, ...).

    Raises
    ------
    InputError
        The file is missing or is not a STAR file.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: file not found" if not src.exists() else f"{src}: not a file")
    try:
        data = starfile.read(src, parse_as_string=list(_PATH_COLUMNS))
    except Exception as err:  # noqa: BLE001 - starfile raises many kinds on bad input
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"{src}: not a readable STAR file ({reason})") from None
    frame = _pick_block(src, data, block).copy()
    for col in frame.columns:
        if col in _NUMBER_COLUMNS:
            values = frame[col].map(lambda v: math.nan if _is_missing(v) else v)
            try:
                frame[col] = pd.to_numeric(values)
            except (ValueError, TypeError):
                frame[col] = values  # left as text; tomograms_from_star names the bad row
        elif frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: None if _is_missing(v) else v).astype(object)
    return frame


def write_star(
    path: str | os.PathLike[str],
    df: pd.DataFrame | Mapping[str, pd.DataFrame],
    overwrite: bool = False,
) -> Path:
    """Write a DataFrame (one ``data_`` block) or a dict of them as STAR, atomically.

    Columns are named without the leading underscore (``rlnTomoName``).  Missing values are
    written ``None`` as IsoNet2 does; floats with 6 decimals (starfile's default).

    Raises
    ------
    OutputError
        The file exists (without ``overwrite``) or its folder is missing or not writable.
    """
    if isinstance(df, pd.DataFrame):
        payload: Any = df
    elif isinstance(df, Mapping) and all(isinstance(v, pd.DataFrame) for v in df.values()):
        payload = dict(df)
    else:
        raise TypeError(f"write_star needs a DataFrame or a dict of them, got {type(df)}")
    with atomic_output(path, overwrite) as tmp:
        starfile.write(payload, tmp, na_rep="None")
    return Path(path)


@dataclass(frozen=True)
class TomogramEntry:
    """One row of a tomogram STAR file (paths resolved, numbers parsed).

    Attributes
    ----------
    name
        ``rlnTomoName`` as written in the file.
    path
        The tomogram (``rlnTomoName``, or RELION-5's ``rlnTomoReconstructedTomogram``),
        resolved against the STAR file's folder; it exists.
    row
        1-based row number in the block (used in messages).
    pixel_size
        ``rlnPixelSize`` in Å, or ``None`` (then the MRC header decides).
    tilt_min, tilt_max
        ``rlnTiltMin`` / ``rlnTiltMax`` in degrees, or ``None``.
    mask
        ``rlnMaskName`` resolved (exists), or ``None``.
    defocus, voltage, cs, amplitude_contrast
        ``rlnDefocus`` (Å), ``rlnVoltage`` (kV), ``rlnSphericalAberration`` (mm),
        ``rlnAmplitudeContrast``, or ``None``.
    deconv_path, corrected_path
        ``rlnDeconvTomoName`` / ``rlnCorrectedTomoName`` resolved (not required to exist:
        they may be outputs), or ``None``.
    half1, half2
        IsoNet2 noise2noise halves resolved (exist), or ``None``.
    tilt_source
        Where ``tilt_min``/``tilt_max`` come from (``"rlnTiltMin/rlnTiltMax"``, or a
        RELION-5 tilt-series STAR file and its column), or ``None``.
    """

    name: str
    path: Path
    row: int
    pixel_size: float | None = None
    tilt_min: float | None = None
    tilt_max: float | None = None
    mask: Path | None = None
    defocus: float | None = None
    voltage: float | None = None
    cs: float | None = None
    amplitude_contrast: float | None = None
    deconv_path: Path | None = None
    corrected_path: Path | None = None
    half1: Path | None = None
    half2: Path | None = None
    tilt_source: str | None = None


def tomograms_from_star(path: str | os.PathLike[str]) -> list[TomogramEntry]:
    """The tomograms listed in a STAR file (IsoNet2 ``tomograms.star`` or RELION-5).

    Parameters
    ----------
    path
        STAR file; its block containing ``rlnTomoName`` is used.

    Returns
    -------
    list[TomogramEntry]
        One entry per row, in file order (empty if the block has no rows).

    Raises
    ------
    InputError
        No ``rlnTomoName`` column; a listed tomogram, mask or half does not exist; a number
        cannot be parsed; a pixel size is not positive; ``tilt_min >= tilt_max`` or a tilt
        outside ``[-90, 90]``.  The message names the STAR file and the row.
    """
    src = Path(path)
    frame = read_star(src)
    if TOMO_NAME not in frame.columns:
        cols = ", ".join(map(str, frame.columns)) or "none"
        raise InputError(f"{src}: no {TOMO_NAME} column (columns: {cols})")
    return [
        _StarRow(rec.to_dict(), i, f"{src}, row {i}", src).entry()
        for i, (_, rec) in enumerate(frame.iterrows(), start=1)
    ]


@dataclass(frozen=True)
class _StarRow:
    """One row of a tomogram list: its values, its number, where it is (for messages), and
    the STAR file (its relative paths are resolved by :func:`resolve_star_path`)."""

    values: dict[str, Any]
    row: int
    where: str
    star: Path

    @property
    def base(self) -> Path:
        return self.star.parent

    def number(self, col: str) -> float | None:
        value: Any = self.values.get(col)
        if _is_missing(value):
            return None
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{self.where}: {col} {value!r} is not a number") from None
        if not math.isfinite(out):
            raise InputError(f"{self.where}: {col} {value!r} is not a finite number")
        return out

    def existing(self, col: str) -> Path | None:
        value = self.values.get(col)
        if _is_missing(value):
            return None
        p = resolve_star_path(str(value), self.base)
        if not p.is_file():
            raise InputError(f"{self.where}: {col} {str(value)!r} does not exist ({p})")
        return p

    def optional(self, col: str) -> Path | None:
        value = self.values.get(col)
        return None if _is_missing(value) else resolve_star_path(str(value), self.base)

    def tomogram(self) -> tuple[str, Path]:
        """The tomogram's name and file (``rlnTomoReconstructedTomogram`` when the name is
        not a file, as in RELION-5)."""
        name_value = self.values[TOMO_NAME]
        if _is_missing(name_value):
            raise InputError(f"{self.where}: {TOMO_NAME} is empty")
        name = str(name_value)
        tomo = resolve_star_path(name, self.base)
        if not tomo.is_file():
            alt = self.optional(RECONSTRUCTED_TOMOGRAM)
            if alt is not None and alt.is_file():
                tomo = alt
            else:
                raise InputError(f"{self.where}: tomogram {name!r} does not exist ({tomo})")
        return name, tomo

    def tilt_range(self, name: str) -> tuple[float | None, float | None, str | None]:
        """``rlnTiltMin``/``rlnTiltMax`` (IsoNet2), else the range of the angles of the
        tilt-series STAR file (RELION-5) or of a block ``data_<name>`` of this file
        (RELION-4), with where it comes from."""
        tmin, tmax = self.number(TILT_MIN), self.number(TILT_MAX)
        if tmin is not None or tmax is not None:
            return tmin, tmax, f"{TILT_MIN}/{TILT_MAX}"
        series = self.existing(TILT_SERIES_STAR)
        found = tilt_series_angles(series if series is not None else self.star, name,
                                   required=series is not None)  # fmt: skip
        if found is None:
            return None, None, None
        angles, column = found
        where = f"{series.name if series is not None else self.star.name}, {column}"
        return float(angles.min()), float(angles.max()), where

    def entry(self) -> TomogramEntry:
        where = self.where
        name, tomo = self.tomogram()
        pixel = self.number(PIXEL_SIZE)
        if pixel is not None and pixel <= 0:
            raise InputError(f"{where}: {PIXEL_SIZE} must be positive, got {pixel:g}")
        tmin, tmax, tilt_source = self.tilt_range(name)
        for col, t in ((TILT_MIN, tmin), (TILT_MAX, tmax)):
            if t is not None and abs(t) > 90:
                raise InputError(f"{where}: {col} {t:g} is outside [-90, 90] degrees")
        if tmin is not None and tmax is not None and tmin >= tmax:
            raise InputError(
                f"{where}: {TILT_MIN} {tmin:g} must be smaller than {TILT_MAX} {tmax:g}"
            )
        return TomogramEntry(
            name=name,
            path=tomo,
            row=self.row,
            pixel_size=pixel,
            tilt_min=tmin,
            tilt_max=tmax,
            mask=self.existing(MASK_NAME),
            defocus=self.number(DEFOCUS),
            voltage=self.number(VOLTAGE),
            cs=self.number(CS),
            amplitude_contrast=self.number(AMPLITUDE_CONTRAST),
            deconv_path=self.optional(DECONV_TOMO_NAME),
            corrected_path=self.optional(CORRECTED_TOMO_NAME),
            half1=self.existing(HALF1),
            half2=self.existing(HALF2),
            tilt_source=tilt_source,
        )


# ------------------------------------------------------------------------------ paths
def is_star(path: str | os.PathLike[str]) -> bool:
    """Whether a file name is a STAR file's (``.star``)."""
    return Path(path).suffix.lower() == ".star"


def _rebase(value: Any, old: Path, new: Path, must_exist: bool = False) -> Any:
    """A relative path of a STAR file in ``old`` rewritten for a STAR file in ``new``: the
    file it names there (:func:`resolve_star_path`), as a STAR file in ``new`` records it."""
    if _is_missing(value) or not isinstance(value, str):
        return value
    p = Path(value.strip()).expanduser()
    if p.is_absolute():
        return value
    found = [c for c in star_path_candidates(p, old) if c.exists()]
    if must_exist and not found:
        return value
    return relative_path(found[0] if found else resolve_star_path(p, old), new)


def rebase_paths(
    frame: pd.DataFrame, old: str | os.PathLike[str], new: str | os.PathLike[str]
) -> pd.DataFrame:
    """The path columns of a STAR table written in folder ``old``, rewritten so that they
    resolve from a STAR file in folder ``new`` (absolute paths are kept; a RELION-5
    ``rlnTomoName`` that names no file is a bare name and is kept too).  Inside the project
    directory both record paths from it (:mod:`cryogen.io.star_paths`), so only a path that
    was written from the old STAR file's folder changes."""
    out = frame.copy()
    old_dir, new_dir = Path(old), Path(new)
    if old_dir.resolve() == new_dir.resolve():
        return out
    for col in _PATH_COLUMNS:
        if col in out.columns:
            must_exist = col == TOMO_NAME
            out[col] = out[col].map(lambda v, e=must_exist: _rebase(v, old_dir, new_dir, e))
            out[col] = out[col].astype(object)
    return out


def star_entries(star: str | os.PathLike[str]) -> list[TomogramEntry]:
    """:func:`tomograms_from_star`, refusing a STAR file that lists no tomogram."""
    entries = tomograms_from_star(star)
    if not entries:
        raise InputError(f"{star}: no tomograms listed")
    return entries


def update_star_column(
    star: str | os.PathLike[str],
    column: str,
    values: dict[int, str],
    output: str | os.PathLike[str] | None,
    overwrite: bool,
) -> Path:
    """Write ``star`` (or ``output``) with ``column`` set for the given 0-based rows.

    Paths are rebased when the STAR file moves to another folder; other data blocks of the
    file are kept as they are; the STAR file is rewritten atomically.
    """
    src = Path(star)
    frame = read_star(src)
    target = Path(output) if output is not None else src
    frame = rebase_paths(frame, src.parent, target.parent)
    if column not in frame.columns:
        frame[column] = None
    frame[column] = frame[column].astype(object)
    for i, value in values.items():
        frame.iat[i, frame.columns.get_loc(column)] = value
    blocks = starfile.read(src, always_dict=True)
    if isinstance(blocks, dict) and len(blocks) > 1:
        name = next(
            (k for k, v in blocks.items() if hasattr(v, "columns") and TOMO_NAME in v.columns),
            next(iter(blocks)),
        )
        blocks[name] = frame
        write_star(target, blocks, overwrite=overwrite or output is None)
    else:
        write_star(target, frame, overwrite=overwrite or output is None)
    return target
