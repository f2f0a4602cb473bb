"""The tomograms a command works on, and the files a step writes for them.

- :func:`tomogram_sources`: the tomograms of the arguments, one STAR file or MRC files
  (:mod:`cryogen.io.sources`); :func:`tomogram_file`: a tomogram's file, or its
  deconvolved one.
- :func:`tilt_ranges`, :func:`shared_tilt_range`, :func:`load_tomograms`: the tilt range
  of each tomogram and the volumes, masks, half-sets and voxel size of a training set
  (:mod:`cryogen.io.training_set`).
- :func:`find_tomograms`: the MRC files of files and folders (a STAR file to be written).
- :func:`output_plan`: a step that writes one file per tomogram and records it in a column
  of the STAR file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryogen.io.files import check_output_path, derived_path
from cryogen.io.sources import TomogramSource, find_tomograms, tomogram_file, tomogram_sources
from cryogen.io.star import relative_path, update_star_column
from cryogen.io.training_set import (
    DEFAULT_TILT_RANGE,
    LoadedTomograms,
    TiltRange,
    load_tomograms,
    shared_tilt_range,
    tilt_ranges,
)

__all__ = [
    "DEFAULT_TILT_RANGE",
    "LoadedTomograms",
    "OutputPlan",
    "OutputTask",
    "TiltRange",
    "TomogramSource",
    "find_tomograms",
    "load_tomograms",
    "output_plan",
    "shared_tilt_range",
    "tilt_ranges",
    "tomogram_file",
    "tomogram_sources",
]


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

    def check(self, overwrite: bool = False, inputs: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Fail before any work if an output exists (without ``overwrite``), cannot be
        written, or is a tomogram, the STAR file or one of ``inputs`` (the other files
        the step reads) (:func:`cryogen.io.check_output_path`)."""
        read = [t.source.path for t in self.tasks] + list(inputs)
        if self.star_output is not None:  # the STAR file itself: updated in place
            check_output_path(self.star_output, overwrite, inputs=read)
        for t in self.tasks:
            check_output_path(t.output, overwrite, inputs=[*read, self.star])

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
