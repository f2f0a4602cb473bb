"""The tomograms a command works on: one STAR file (its rows) or a list of MRC files.

Every command that takes "tomograms or a STAR file" resolves its arguments here, so the
rules are the same everywhere: one STAR file, or one or more MRC files, never both; the STAR
file's rows bring their pixel size, tilt range and mask along.

- :func:`tomogram_sources`: the tomograms of the arguments.
- :func:`shared_tilt_range`, :func:`load_tomograms`: the one tilt range and the volumes,
  masks and voxel size of a training set.
- :func:`find_tomograms`: the MRC files of files and folders (a STAR file to be written).
- :func:`output_plan`, :func:`tomogram_file`: a step that writes one file per tomogram
  and records it in a column of the STAR file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryogen.errors import InputError
from cryogen.io.files import check_output_path, derived_path
from cryogen.io.mrc import MRC_EXTENSIONS, read_volume
from cryogen.io.star import (
    TomogramEntry,
    is_star,
    relative_path,
    star_entries,
    update_star_column,
)

__all__ = [
    "LoadedTomograms",
    "OutputPlan",
    "OutputTask",
    "TomogramSource",
    "find_tomograms",
    "load_tomograms",
    "output_plan",
    "shared_tilt_range",
    "tomogram_file",
    "tomogram_sources",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TomogramSource:
    """One tomogram to work on.

    Attributes
    ----------
    path : Path
        The tomogram's file.
    where : str
        How messages name it: the file, or ``"LIST.star, row N"``.
    pixel_size : float or None
        Å, from the STAR file's ``rlnPixelSize`` (``None``: the MRC header's).
    tilt_min, tilt_max : float or None
        Degrees, from the STAR file (``None``: not recorded).
    mask : Path or None
        Its mask (the STAR file's ``rlnMaskName``, or given with the files).
    entry : TomogramEntry or None
        The STAR row, when the tomogram was listed in one.
    """

    path: Path
    where: str
    pixel_size: float | None = None
    tilt_min: float | None = None
    tilt_max: float | None = None
    mask: Path | None = None
    entry: TomogramEntry | None = None


def tomogram_sources(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    masks: Sequence[str | os.PathLike[str]] | None = None,
) -> tuple[list[TomogramSource], Path | None]:
    """Resolve "MRC files or one STAR file" into tomograms.

    Parameters
    ----------
    inputs
        One STAR file, or one or more MRC files.
    masks
        With MRC files: one mask per tomogram, in order (a STAR file names its masks in
        ``rlnMaskName``).

    Returns
    -------
    sources : list of TomogramSource
    star : Path or None
        The STAR file, when the input was one.

    Raises
    ------
    InputError
        No input, STAR and MRC files mixed, a STAR file that lists nothing, masks with a
        STAR file, or as many masks as tomograms not given.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("give at least one tomogram (MRC) or one STAR file")
    if any(is_star(p) for p in paths):
        if len(paths) > 1:
            raise InputError("give either one STAR file or one or more MRC files, not both")
        if masks:
            raise InputError("with a STAR file, give the masks in its rlnMaskName column")
        star = paths[0]
        sources = [
            TomogramSource(
                path=Path(e.path),
                where=f"{star}, row {e.row}",
                pixel_size=e.pixel_size,
                tilt_min=e.tilt_min,
                tilt_max=e.tilt_max,
                mask=Path(e.mask) if e.mask is not None else None,
                entry=e,
            )
            for e in star_entries(star)
        ]
        return sources, star
    if masks and len(masks) != len(paths):
        raise InputError(f"{len(masks)} masks given for {len(paths)} tomograms")
    mask_paths: list[Path | None] = [Path(m) for m in masks] if masks else [None] * len(paths)
    return [TomogramSource(p, str(p), mask=m) for p, m in zip(paths, mask_paths, strict=True)], None


# ------------------------------------------------------------------------------ training set
def shared_tilt_range(
    sources: Sequence[TomogramSource],
    star: str | os.PathLike[str] | None,
    *,
    tilt_min: float | None = None,
    tilt_max: float | None = None,
) -> tuple[float | None, float | None]:
    """The tilt range of a set of tomograms, which one model is trained for.

    Parameters
    ----------
    sources
        The tomograms (:func:`tomogram_sources`).
    star
        The STAR file they come from, or ``None`` (MRC files record no tilt range).
    tilt_min, tilt_max
        Degrees, given by the caller: they win over the STAR file's.

    Returns
    -------
    (tilt_min, tilt_max)
        Each the given value, else the one the STAR file's rows share, else ``None``.

    Raises
    ------
    InputError
        The rows record different tilt ranges and the caller did not give both ends.
    """
    shared: tuple[float, float] | None = None
    if star is not None:
        known = {
            (s.tilt_min, s.tilt_max)
            for s in sources
            if s.tilt_min is not None and s.tilt_max is not None
        }
        if len(known) > 1 and (tilt_min is None or tilt_max is None):
            raise InputError(
                f"{star}: the tomograms have different tilt ranges {sorted(known)}; "
                "one model is trained per tilt range (split the STAR file)"
            )
        if len(known) == 1:
            shared = next(iter(known))
    t0 = tilt_min if tilt_min is not None else (shared[0] if shared else None)
    t1 = tilt_max if tilt_max is not None else (shared[1] if shared else None)
    return t0, t1


@dataclass(frozen=True)
class LoadedTomograms:
    """The volumes of a training set, in memory.

    Attributes
    ----------
    volumes : list of numpy.ndarray
        ``(z, y, x)`` each, beam along ``z``.
    masks : list of (numpy.ndarray or None), or None
        One per volume (``None``: that volume has none), or ``None`` when none has one.
    voxel_size : float
        Å, the first volume's.
    """

    volumes: list[np.ndarray]
    masks: list[np.ndarray | None] | None
    voxel_size: float


def load_tomograms(
    sources: Sequence[TomogramSource], *, beam_axis: str = "z", pixel_size: float | None = None
) -> LoadedTomograms:
    """Read the tomograms and their masks into memory.

    Every volume is read with ``pixel_size`` when given, else its source's (the STAR
    file's), else its header's; a voxel size that differs from the first volume's is
    logged as a warning.  Masks are read with the first volume's voxel size.
    """
    vols = []
    for s in sources:
        px = pixel_size if pixel_size is not None else s.pixel_size
        vols.append(read_volume(s.path, beam_axis=beam_axis, pixel_size=px))
    voxel = float(vols[0].voxel_size)
    for v, s in zip(vols[1:], sources[1:], strict=True):
        if abs(float(v.voxel_size) - voxel) > 1e-3 * voxel:
            logger.warning(
                "%s: voxel size %.4g Å differs from the first tomogram's %.4g Å",
                s.path,
                float(v.voxel_size),
                voxel,
            )
    masks = None
    if any(s.mask is not None for s in sources):
        masks = [
            None
            if s.mask is None
            else read_volume(
                s.mask, beam_axis=beam_axis, pixel_size=voxel, check_values=False
            ).load()
            for s in sources
        ]
    return LoadedTomograms([v.load() for v in vols], masks, voxel)


# ------------------------------------------------------------------------------ listing
def find_tomograms(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
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


# ------------------------------------------------------------------------------ one file each
@dataclass(frozen=True)
class OutputTask:
    """A tomogram and the file a step writes for it."""

    source: TomogramSource
    output: Path


@dataclass(frozen=True)
class OutputPlan:
    """The files a step that writes one file per tomogram writes (:func:`output_plan`).

    Attributes
    ----------
    tasks : list of OutputTask
    star : Path or None
        The STAR file listing the tomograms, when the input was one.
    star_output : Path or None
        The STAR file to write with the outputs recorded (default: ``star`` itself).
    """

    tasks: list[OutputTask]
    star: Path | None = None
    star_output: Path | None = None

    def check(self, overwrite: bool = False) -> None:
        """Fail before any work if an output exists (without ``overwrite``) or cannot be
        written (:func:`cryogen.io.check_output_path`)."""
        if self.star_output is not None:
            check_output_path(self.star_output, overwrite)
        for t in self.tasks:
            check_output_path(t.output, overwrite)

    def record(self, column: str, overwrite: bool = False) -> Path | None:
        """Write the outputs into ``column`` of the STAR file (paths relative to the STAR
        file written); returns its path, or ``None`` without a STAR file."""
        if self.star is None:
            return None
        folder = (self.star_output or self.star).parent
        values = {}
        for t in self.tasks:
            if t.source.entry is None:
                raise ValueError(f"{t.source.where} is not a row of {self.star}")
            values[t.source.entry.row - 1] = relative_path(t.output, folder)
        return update_star_column(self.star, column, values, self.star_output, overwrite)


def output_plan(
    input: str | os.PathLike[str],
    suffix: str,
    *,
    output: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
) -> OutputPlan:
    """The tomograms of one MRC file or one STAR file, each with the MRC file to write.

    Parameters
    ----------
    input
        An MRC tomogram, or a STAR file listing tomograms.
    suffix
        Added to a tomogram's name to name its output (``"_mask"``: ``TS_mask.mrc``).
    output
        For an MRC input: its output (default: named with ``suffix``); for a STAR input:
        the STAR file to write instead of updating ``input``.
    output_dir
        Folder of the named outputs (default: beside each tomogram).
    """
    sources, star = tomogram_sources([input])
    if star is None:
        path = sources[0].path
        out = Path(output) if output is not None else derived_path(path, suffix, out_dir=output_dir)
        return OutputPlan([OutputTask(sources[0], out)])
    tasks = [OutputTask(s, derived_path(s.path, suffix, out_dir=output_dir)) for s in sources]
    return OutputPlan(tasks, star, Path(output) if output is not None else None)


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
