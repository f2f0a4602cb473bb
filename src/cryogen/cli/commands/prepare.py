"""``cryogen prepare``: list tomograms in a STAR file, optionally binned.

Each row gets the tomogram's tilt range (given, else from a ``.tlt``/``.aln`` file beside
it, else the default with a warning) and its half-sets where they are found by name or
given; a tomogram known only by its half-sets is listed as their mean, written beside.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cryogen.cli.options import (
    DEFAULT_AMPLITUDE_CONTRAST,
    DEFAULT_CS,
    DEFAULT_VOLTAGE,
    AmplitudeContrast,
    Cs,
    OutputDir,
    Overwrite,
    PixelSize,
    TiltFiles,
    TiltMaxFromData,
    TiltMinFromData,
    Voltage,
    defocus_option,
    output_option,
    target_pixel_size_option,
)
from cryogen.cli.pairs import halves_option, pairs
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.io.half_sets import TomogramFiles
    from cryogen.io.inputs import TiltRange, TomogramSource

__all__ = ["prepare"]

console = Console()
err_console = Console(stderr=True)


# ------------------------------------------------------------------------------ options
Inputs = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Tomograms (MRC files) and/or folders holding them (.mrc, .rec, ...); half-sets "
        "among them (NAME_even/NAME_odd, NAME_EVN/NAME_ODD, NAME_half1/NAME_half2, Warp's "
        "even/ and odd/ folders) are listed with their tomogram.",
        show_default=False,
    ),
]
Halves = Annotated[
    list[Path] | None,
    halves_option(
        "Two half-sets of a tomogram (even/odd frames or tilts), repeatable: listed in "
        "rlnTomoReconstructedTomogramHalf1/2, with the tomogram of the same name, else "
        "their mean (NAME_mean.mrc, written)."
    ),
]
Output = Annotated[
    Path,
    output_option("STAR file to write (RELION-5 / IsoNet2 column names)."),
]
Defocus = Annotated[
    float | None,
    defocus_option(
        "Defocus of the zero tilt, µm underfocus, for every tomogram (written in "
        "Å to rlnDefocus; edit the STAR for per-tomogram values) (default: None, "
        "needed later by deconv)."
    ),
]
TargetPixelSize = Annotated[
    float | None,
    target_pixel_size_option(
        "Bin every tomogram to this pixel size in Å (Fourier cropping), write "
        "the binned copies (NAME_<size>A.mrc) and list those (default: no binning)."
    ),
]


# ------------------------------------------------------------------------------ command
def prepare(
    output: Output,
    inputs: Inputs = None,
    tilt_min: TiltMinFromData = None,
    tilt_max: TiltMaxFromData = None,
    tilt_files: TiltFiles = None,
    halves: Halves = None,
    defocus: Defocus = None,
    voltage: Voltage = DEFAULT_VOLTAGE,
    cs: Cs = DEFAULT_CS,
    amplitude_contrast: AmplitudeContrast = DEFAULT_AMPLITUDE_CONTRAST,
    target_pixel_size: TargetPixelSize = None,
    output_dir: OutputDir = None,
    pixel_size: PixelSize = None,
    overwrite: Overwrite = False,
) -> None:
    """List tomograms in a STAR file (one row each, pixel size from the MRC header, tilt
    range from their tilt angles, half-sets), optionally binned to a target pixel size."""
    import pandas as pd

    from cryogen import io
    from cryogen.io.inputs import tilt_ranges
    from cryogen.tomo.microscope import defocus_angstrom

    io.check_output_path(output, overwrite)
    groups = _tomograms(inputs or [], pairs(halves))
    read = [p for g in groups for p in (g.tomogram, g.half1, g.half2)]
    io.check_output_path(output, overwrite, inputs=read)  # never over a tomogram
    sources = _sources(groups, tilt_files)
    ranges = tilt_ranges(sources, tilt_min=tilt_min, tilt_max=tilt_max)
    same = {  # the columns every row shares
        io.DEFOCUS: None if defocus is None else defocus_angstrom(defocus),
        io.VOLTAGE: float(voltage),
        io.CS: float(cs),
        io.AMPLITUDE_CONTRAST: float(amplitude_contrast),
        io.DECONV_TOMO_NAME: None,
        io.MASK_NAME: None,
    }
    writer = _Writer(output, output_dir, target_pixel_size, pixel_size, overwrite)
    with_halves = any(g.half1 is not None for g in groups)
    rows = []
    for i, (group, tilt) in enumerate(zip(groups, ranges, strict=True), start=1):
        row = {"rlnIndex": i, **writer.files(group, with_halves), **same}
        rows.append({**row, io.TILT_MIN: tilt.tilt_min, io.TILT_MAX: tilt.tilt_max})
        console.print(f"{row[io.TOMO_NAME]}: tilt {tilt}{_halves_note(group)}", highlight=False)
    _warn_defaults(sources, ranges)
    io.write_star(output, pd.DataFrame(rows), overwrite=overwrite)
    console.print(f"wrote {output} ({len(rows)} tomograms)")


def _tomograms(
    inputs: Sequence[Path], given: list[tuple[Path, Path]] | None
) -> list[TomogramFiles]:
    """The tomograms of the files and folders, with the half-sets found by name, then the
    pairs given (each with the listed tomogram of its name, if any)."""
    from cryogen.io.half_sets import TomogramFiles, group_half_sets, half_set_of
    from cryogen.io.inputs import find_tomograms

    if not inputs and not given:
        raise InputError("give tomograms, folders of tomograms, or --halves EVEN ODD")
    groups = group_half_sets(find_tomograms(inputs)) if inputs else []
    for a, b in given or []:
        for f in (a, b):
            if not f.is_file():
                raise InputError(f"{f}: file not found")
        name = (half_set_of(a) or (a.stem, 1))[0].lower()
        match = next(
            (i for i, g in enumerate(groups) if g.tomogram and g.tomogram.stem.lower() == name),
            None,
        )
        if match is None:
            groups.append(TomogramFiles(None, a, b))
        else:
            groups[match] = TomogramFiles(groups[match].tomogram, a, b)
    return groups


def _sources(
    groups: Sequence[TomogramFiles], tilt_files: list[Path] | None
) -> list[TomogramSource]:
    """A :class:`~cryogen.io.TomogramSource` per tomogram, for its tilt range."""
    from cryogen.io.inputs import tomogram_sources

    if tilt_files and len(tilt_files) not in (1, len(groups)):
        raise InputError(f"{len(tilt_files)} tilt-angle files given for {len(groups)} tomograms")
    files = (
        (tilt_files * len(groups) if len(tilt_files) == 1 else tilt_files) if tilt_files else None
    )
    out = []
    for i, g in enumerate(groups):
        pair = [(g.half1, g.half2)] if g.half1 is not None and g.half2 is not None else None
        tomo = [g.tomogram] if g.tomogram is not None else []
        one = [files[i]] if files else None
        out.append(tomogram_sources(tomo, tilt_files=one, halves=pair)[0][0])
    return out


def _halves_note(group: TomogramFiles) -> str:
    if group.half1 is None or group.half2 is None:
        return ""
    return f", half-sets {group.half1.name} and {group.half2.name}"


def _warn_defaults(sources: Sequence[TomogramSource], ranges: Sequence[TiltRange]) -> None:
    defaulted = [s.where for s, r in zip(sources, ranges, strict=True) if r.default]
    if defaulted:
        err_console.print(
            f"[bold yellow]warning:[/] no tilt angles found for {', '.join(defaulted)}; "
            "listed with the default -60/+60 degrees. A wrong range trains a wrong wedge: "
            "give --tilt-min/--tilt-max or --tlt, or put NAME.tlt beside the tomogram.",
            highlight=False,
            soft_wrap=True,
        )


class _Writer:
    """The files of a row: binned copies (with a target pixel size) and the mean of
    half-sets without a tomogram, written into the output folder."""

    def __init__(
        self,
        star: Path,
        output_dir: Path | None,
        target: float | None,
        pixel_size: float | None,
        overwrite: bool,
    ) -> None:
        self.star, self.target, self.pixel_size = star, target, pixel_size
        self.out_dir = output_dir if output_dir is not None else star.parent
        self.overwrite = overwrite

    def _folder(self) -> Path:
        if not self.out_dir.is_dir():
            raise InputError(f"--output-dir {self.out_dir} is not an existing folder")
        return self.out_dir

    def volume(self, f: Path) -> tuple[Path, float]:
        """``f`` (binned to the target pixel size) and its voxel size."""
        from cryogen import io
        from cryogen.tomo import bin_factor_for, bin_volume

        vol = io.read_volume(f, pixel_size=self.pixel_size, check_values=False)
        if self.target is None:
            return f, float(vol.voxel_size)
        try:
            factor = bin_factor_for(vol.voxel_size, self.target)
        except ValueError as err:
            raise InputError(f"{f}: {err}") from None
        path = io.derived_path(f, f"_{self.target:g}A", out_dir=self._folder())
        with console.status(f"binning {f.name} by {factor:.3g}"):
            data, actual = bin_volume(vol.data, factor)
        voxel = float(vol.voxel_size * actual)
        io.write_volume(path, data, voxel_size=voxel, origin=vol.origin, overwrite=self.overwrite)
        console.print(f"wrote {path}  shape {data.shape}  voxel {voxel:.4g} Å")
        return path, voxel

    def mean(self, a: Path, b: Path, voxel: float) -> Path:
        """The mean of two half-sets, written as ``NAME_mean.mrc``."""
        from cryogen import io
        from cryogen.io.half_sets import half_set_of

        name = (half_set_of(a) or (a.stem, 1))[0]
        path = self._folder() / f"{name}_mean.mrc"
        va = io.read_volume(a, pixel_size=voxel)
        mean = (va.load() + io.read_volume(b, pixel_size=voxel).load()) / 2
        io.write_volume(path, mean, voxel_size=voxel, origin=va.origin, overwrite=self.overwrite)
        console.print(f"wrote {path} (the mean of {a.name} and {b.name})")
        return path

    def files(self, group: TomogramFiles, with_halves: bool) -> dict[str, Any]:
        """The path and pixel-size columns of a tomogram's row."""
        from cryogen import io

        halves = [self.volume(h) for h in (group.half1, group.half2) if h is not None]
        if group.tomogram is not None:
            tomo, voxel = self.volume(group.tomogram)
        else:
            voxel = halves[0][1]
            tomo = self.mean(halves[0][0], halves[1][0], voxel)
        row: dict[str, Any] = {
            io.TOMO_NAME: io.relative_path(tomo, self.star.parent),
            io.PIXEL_SIZE: voxel,
        }
        if with_halves:
            for i, col in enumerate((io.HALF1, io.HALF2)):
                row[col] = io.relative_path(halves[i][0], self.star.parent) if halves else None
        return row
