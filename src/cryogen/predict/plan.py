"""Which files a prediction run reads and writes: the tomograms (MRC files or one STAR
file), their outputs and standard-deviation maps, and the corrected STAR file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryogen.errors import InputError, OutputError
from cryogen.io import (
    CORRECTED_TOMO_NAME,
    MRC_EXTENSIONS,
    check_output_path,
    derived_path,
    read_star,
    rebase_paths,
    relative_path,
    tomogram_sources,
    write_star,
)

__all__ = ["CORRECTED_SUFFIX", "STD_SUFFIX", "Job", "PredictionPlan", "plan_outputs"]

#: Added to an input's name to name its output in an output folder.
CORRECTED_SUFFIX = "_corrected"
#: Added to an output's name to name its standard-deviation map.
STD_SUFFIX = "_std"


@dataclass(frozen=True)
class Job:
    """One tomogram to correct.

    Attributes
    ----------
    input, output, std
        The tomogram, its prediction and its standard-deviation map (``None``: none).
    pixel_size
        Å (``None``: the MRC header's).
    tilt
        ``(tilt_min, tilt_max)`` recorded for it, degrees (``None``: not recorded).
    where
        How messages name it: the file, or ``"LIST.star, row N"``.
    halves
        Its two half-sets (``None``: none given).
    """

    input: Path
    output: Path
    std: Path | None
    pixel_size: float | None
    tilt: tuple[float | None, float | None]
    where: str
    halves: tuple[Path, Path] | None = None


@dataclass(frozen=True)
class PredictionPlan:
    """The jobs of a run, and the STAR file it reads (``star``) and writes (``star_out``)."""

    jobs: tuple[Job, ...]
    star: Path | None = None
    star_out: Path | None = None

    def check_files(
        self, overwrite: bool = False, inputs: Sequence[str | os.PathLike[str]] = ()
    ) -> None:
        """Refuse a missing input or half-set, an existing output (without ``overwrite``)
        and an output that is an input (a tomogram, a half-set, the STAR file, or one of
        ``inputs``: the model), before any work."""
        read = [p for j in self.jobs for p in (j.input, *(j.halves or ()))]
        read += [self.star, *inputs]
        for job in self.jobs:
            for p in (job.input, *(job.halves or ())):
                if not p.is_file():
                    raise InputError(f"{p}: file not found")
            for p in (job.output, job.std):
                if p is not None:
                    check_output_path(p, overwrite, inputs=read)
        if self.star_out is not None:
            check_output_path(self.star_out, overwrite, inputs=read)

    def largest_first(self) -> list[Job]:
        """The jobs by decreasing input size (to share them over processes evenly)."""
        return sorted(self.jobs, key=lambda j: -j.input.stat().st_size)

    def write_star(self, overwrite: bool = False) -> Path | None:
        """Write ``star_out``: the input STAR with ``rlnCorrectedTomoName`` set, its paths
        rebased for the new file's folder (so that they still resolve)."""
        if self.star is None or self.star_out is None:
            return None
        folder = self.star_out.parent
        frame = rebase_paths(read_star(self.star), self.star.parent, folder)
        frame[CORRECTED_TOMO_NAME] = [relative_path(j.output, folder) for j in self.jobs]
        write_star(self.star_out, frame, overwrite=overwrite)
        return self.star_out


def _output_folder(output: Path, count: int) -> None:
    """Check (and create) the folder that receives ``count`` outputs."""
    if output.suffix.lower() in MRC_EXTENSIONS and not output.is_dir():
        raise InputError(f"{count} tomograms need an output folder, not the file name {output}")
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output} is a file; give a folder for the outputs")
    if not output.exists():
        if not output.parent.is_dir():
            raise OutputError(f"cannot create {output}: {output.parent} does not exist")
        try:  # under torchrun another rank may have just made it
            output.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder {output}: {exc.strerror}") from None


def _check_distinct(jobs: Sequence[Job]) -> None:
    """Refuse two jobs that would write the same file."""
    seen: dict[Path, str] = {}
    for job in jobs:
        for p in (job.output, job.std):
            if p is None:
                continue
            key = Path(os.path.abspath(p))
            if key in seen:
                raise InputError(
                    f"{job.where} and {seen[key]} would both be written to {p}; "
                    "rename one of the tomograms"
                )
            seen[key] = job.where


def plan_outputs(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    samples: int = 1,
    pixel_size: float | None = None,
    halves: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]] | None = None,
) -> PredictionPlan:
    """The tomograms to correct, their output files and the STAR file to write.

    ``IN.mrc`` with output ``OUT.mrc`` writes ``OUT.mrc``; several MRC files, a STAR file,
    or an output that is a folder (an existing one, or a name without an MRC extension)
    write ``OUT_DIR/<input stem>_corrected.mrc`` (the folder is created if missing).  With
    ``samples >= 2`` every output ``X.mrc`` gets ``X_std.mrc`` beside it.  A STAR input
    also writes ``OUT_DIR/<star stem>_corrected.star``.  ``pixel_size`` replaces the STAR
    file's and the headers'.  ``halves``: with MRC files, one ``(half1, half2)`` pair per
    tomogram (a STAR file names them in its half-set columns).

    Raises
    ------
    InputError
        Mixed STAR/MRC inputs, several inputs for one output file, two inputs with the
        same output name, an unreadable STAR file, or half-sets without their tomogram.
    OutputError
        The output folder cannot be created.
    """
    output = Path(output)
    sources, star = tomogram_sources(inputs, halves=halves)
    if any(s.from_halves for s in sources):
        raise InputError(
            "give the tomograms to correct (the mean of each pair of half-sets) before "
            "--halves: cryogen predict MODEL TOMO.mrc --halves EVEN ODD -o OUT.mrc"
        )
    to_folder = (
        star is not None
        or len(inputs) > 1
        or output.is_dir()
        or output.suffix.lower() not in MRC_EXTENSIONS
    )
    if to_folder:
        _output_folder(output, len(sources))
    jobs = []
    for s in sources:
        out = derived_path(s.path, CORRECTED_SUFFIX, ".mrc", output) if to_folder else output
        jobs.append(
            Job(
                input=Path(s.path),
                output=out,
                std=derived_path(out, STD_SUFFIX, ".mrc") if samples >= 2 else None,
                pixel_size=pixel_size if pixel_size is not None else s.pixel_size,
                tilt=(s.tilt_min, s.tilt_max),
                where=s.where,
                halves=(s.half1, s.half2) if s.half1 and s.half2 else None,
            )
        )
    _check_distinct(jobs)
    star_out = derived_path(star, CORRECTED_SUFFIX, ".star", output) if star is not None else None
    return PredictionPlan(tuple(jobs), star, star_out)
