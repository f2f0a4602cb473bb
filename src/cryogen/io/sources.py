"""The tomograms of a command's arguments: one STAR file (its rows) or MRC files.

Every command that takes "tomograms or a STAR file" resolves its arguments here, so the
rules are the same everywhere: one STAR file, or one or more MRC files (or half-set pairs),
never both; a STAR row brings its pixel size, tilt range, mask and half-sets along, an MRC
file its tilt angles from a ``.tlt`` / ``.aln`` file given or found beside it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryogen.errors import InputError
from cryogen.io.mrc import MRC_EXTENSIONS
from cryogen.io.star import TomogramEntry, is_star, star_entries
from cryogen.io.tlt import find_tilt_file, read_tilt_angles

__all__ = [
    "TomogramSource",
    "find_tomograms",
    "tilt_file_range",
    "tomogram_file",
    "tomogram_sources",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TomogramSource:
    """One tomogram to work on.

    Attributes
    ----------
    path : Path
        The tomogram's file (with ``from_halves``: its first half-set's).
    where : str
        How messages name it: the file, or ``"LIST.star, row N"``.
    pixel_size : float or None
        Å, from the STAR file's ``rlnPixelSize`` (``None``: the MRC header's).
    tilt_min, tilt_max : float or None
        Degrees, from the STAR file or a tilt-angle file (``None``: not recorded).
    mask : Path or None
        Its mask (the STAR file's ``rlnMaskName``, or given with the files).
    entry : TomogramEntry or None
        The STAR row, when the tomogram was listed in one.
    half1, half2 : Path or None
        Its two half-sets (even/odd frames or tilts): the STAR file's
        ``rlnTomoReconstructedTomogramHalf1/2``, or given as a pair.
    tilt_source : str or None
        Where ``tilt_min``/``tilt_max`` come from (a file, or STAR columns).
    from_halves : bool
        No tomogram was given: it is the mean of its two half-sets.
    """

    path: Path
    where: str
    pixel_size: float | None = None
    tilt_min: float | None = None
    tilt_max: float | None = None
    mask: Path | None = None
    entry: TomogramEntry | None = None
    half1: Path | None = None
    half2: Path | None = None
    tilt_source: str | None = None
    from_halves: bool = False


def tilt_file_range(path: PathLike) -> tuple[float, float]:
    """The lowest and highest angle (degrees) of a ``.tlt`` or ``.aln`` file.

    Raises
    ------
    InputError
        The file is unreadable (see :func:`cryogen.io.read_tilt_angles`) or holds a single
        angle (no range).
    """
    angles = read_tilt_angles(path)
    t0, t1 = float(angles.min()), float(angles.max())
    if t0 >= t1:
        raise InputError(f"{path}: all tilt angles are {t0:g} degrees; a tilt range needs two")
    return t0, t1


def _with_tilt_file(source: TomogramSource, tilt_file: Path | None) -> TomogramSource:
    """``source`` with the range of ``tilt_file`` (else of a file found beside the tomogram
    or its first half-set), unless it already has one."""
    if source.tilt_min is not None or source.tilt_max is not None:
        return source
    found = tilt_file
    for beside in (source.path, source.half1):
        if found is None and beside is not None:
            found = find_tilt_file(beside)
    if found is None:
        return source
    t0, t1 = tilt_file_range(found)
    return replace(source, tilt_min=t0, tilt_max=t1, tilt_source=str(found))


def _star_sources(star: Path) -> list[TomogramSource]:
    sources = []
    for e in star_entries(star):
        s = TomogramSource(
            path=Path(e.path),
            where=f"{star}, row {e.row}",
            pixel_size=e.pixel_size,
            tilt_min=e.tilt_min,
            tilt_max=e.tilt_max,
            mask=Path(e.mask) if e.mask is not None else None,
            entry=e,
            half1=e.half1,
            half2=e.half2,
            tilt_source=e.tilt_source,
        )
        if (e.half1 is None) != (e.half2 is None):
            raise InputError(
                f"{s.where}: give both half-sets (rlnTomoReconstructedTomogramHalf1/2)"
            )
        sources.append(_with_tilt_file(s, None))
    return sources


def _file_sources(
    paths: list[Path],
    masks: Sequence[PathLike] | None,
    tilt_files: Sequence[PathLike] | None,
    halves: Sequence[tuple[PathLike, PathLike]] | None,
) -> list[TomogramSource]:
    pairs = [(Path(a), Path(b)) for a, b in halves] if halves else []
    count = len(paths) or len(pairs)
    if pairs and paths and len(pairs) != len(paths):
        raise InputError(f"{len(pairs)} half-set pairs given for {len(paths)} tomograms")
    for name, given in (("masks", masks), ("tilt-angle files", tilt_files)):
        if given and len(given) not in ({count} if name == "masks" else {1, count}):
            raise InputError(f"{len(given)} {name} given for {count} tomograms")
    mask_paths = [Path(m) for m in masks] if masks else [None] * count
    tilts = [Path(t) for t in tilt_files] if tilt_files else [None] * count
    tilts = tilts * count if len(tilts) == 1 else tilts
    out = []
    for i in range(count):
        if not paths:  # the tomogram is the mean of its half-sets
            a, b = pairs[i]
            s = TomogramSource(a, f"mean of {a} and {b}", half1=a, half2=b, from_halves=True)
        else:
            a_or_none, b_or_none = pairs[i] if pairs else (None, None)
            s = TomogramSource(paths[i], str(paths[i]), half1=a_or_none, half2=b_or_none)
        out.append(_with_tilt_file(replace(s, mask=mask_paths[i]), tilts[i]))
    return out


def tomogram_sources(
    inputs: Sequence[PathLike],
    *,
    masks: Sequence[PathLike] | None = None,
    tilt_files: Sequence[PathLike] | None = None,
    halves: Sequence[tuple[PathLike, PathLike]] | None = None,
) -> tuple[list[TomogramSource], Path | None]:
    """Resolve "MRC files or one STAR file" into tomograms.

    Parameters
    ----------
    inputs
        One STAR file, or MRC files (none when ``halves`` are given: each tomogram is then
        the mean of its half-sets).
    masks
        With MRC files: one mask per tomogram, in order (a STAR file names its masks in
        ``rlnMaskName``).
    tilt_files
        With MRC files: the tilt angles (IMOD ``.tlt``, AreTomo ``.aln``), one file for
        every tomogram or one per tomogram; without, a file found beside each tomogram
        (:func:`cryogen.io.find_tilt_file`) gives its range, for STAR rows too when they
        record none.
    halves
        With MRC files: one ``(half1, half2)`` pair per tomogram, in order.

    Returns
    -------
    sources : list of TomogramSource
    star : Path or None
        The STAR file, when the input was one.

    Raises
    ------
    InputError
        No input, STAR and MRC files mixed, a STAR file that lists nothing, masks, tilt
        files or half-sets with a STAR file, counts that do not match the tomograms, an
        unreadable tilt-angle file.
    """
    paths = [Path(p) for p in inputs]
    if not paths and not halves:
        raise InputError("give at least one tomogram (MRC) or one STAR file")
    if any(is_star(p) for p in paths):
        if len(paths) > 1:
            raise InputError("give either one STAR file or one or more MRC files, not both")
        columns = {
            "masks": (masks, "rlnMaskName column"),
            "half-sets": (halves, "rlnTomoReconstructedTomogramHalf1/2 columns"),
            "tilt angles": (tilt_files, "rlnTiltMin/rlnTiltMax columns"),
        }
        for what, (given, column) in columns.items():
            if given:
                raise InputError(f"with a STAR file, give the {what} in its {column}")
        return _star_sources(paths[0]), paths[0]
    return _file_sources(paths, masks, tilt_files, halves), None


def tomogram_file(source: TomogramSource, *, deconvolved: bool = False) -> Path:
    """The file of a tomogram; with ``deconvolved``, its STAR row's ``rlnDeconvTomoName``
    when that exists (a warning names a listed one that is missing)."""
    entry = source.entry
    if not deconvolved or entry is None or entry.deconv_path is None:
        return source.path
    if entry.deconv_path.is_file():
        return entry.deconv_path
    logger.warning(
        "%s: rlnDeconvTomoName %s does not exist; using rlnTomoName",
        source.where,
        entry.deconv_path,
    )
    return source.path


def find_tomograms(inputs: Sequence[PathLike]) -> list[Path]:
    """The MRC files among ``inputs`` and in the folders among them.

    A folder contributes its files with an MRC extension (:data:`MRC_EXTENSIONS`, hidden
    files left out), sorted by name; a file is taken as it is; a file given twice (also
    through its folder) is listed once, where it first appears.

    Raises
    ------
    InputError
        An input does not exist, or a folder holds no MRC file.
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p
                for p in item.iterdir()
                if p.is_file() and p.suffix.lower() in MRC_EXTENSIONS and not p.name.startswith(".")
            )
            if not found:
                raise InputError(
                    f"{item}: no tomograms in this folder (looked for {', '.join(MRC_EXTENSIONS)})"
                )
            files += found
        elif item.exists():
            files.append(item)
        else:
            raise InputError(f"{item}: file not found")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique
