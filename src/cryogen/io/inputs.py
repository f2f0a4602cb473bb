"""The tomograms a command works on: one STAR file (its rows) or a list of MRC files.

Every command that takes "tomograms or a STAR file" resolves its arguments here, so the
rules are the same everywhere: one STAR file, or one or more MRC files, never both; the STAR
file's rows bring their pixel size, tilt range and mask along.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryogen.errors import InputError
from cryogen.io.star import TomogramEntry, is_star, star_entries

__all__ = ["TomogramSource", "tomogram_sources"]


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
