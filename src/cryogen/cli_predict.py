"""The ``cryogen predict`` command (registered by ``cryogen.cli``).

Thin: it resolves the inputs (MRC files or a STAR list) and the outputs, loads the model
once, calls :func:`cryogen.predict.predict_file` per tomogram and, for a STAR list, writes
a STAR file with ``rlnCorrectedTomoName`` added.  User errors are ``CryogenError``
subclasses, printed by ``cryogen.cli`` as one line.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryogen.errors import InputError, OutputError

__all__ = ["register", "plan_outputs", "CORRECTED_SUFFIX", "STD_SUFFIX"]

logger = logging.getLogger(__name__)
console = Console()
err_console = Console(stderr=True)

#: Added to an input's name to name its output in an output folder.
CORRECTED_SUFFIX = "_corrected"
#: Added to an output's name to name its standard-deviation map.
STD_SUFFIX = "_std"


class Method(str, Enum):
    cryogen = "cryogen"
    isonet = "isonet"


@dataclass
class Job:
    """One tomogram to correct."""

    input: Path
    output: Path
    std: Path | None
    pixel_size: float | None
    tilt: tuple[float | None, float | None]
    where: str  # for messages: the file, or "STAR, row i"


def plan_outputs(
    inputs: list[Path], output: Path, *, samples: int = 1, pixel_size: float | None = None
) -> tuple[list[Job], Path | None]:
    """The tomograms to correct, their output files and the STAR file to write.

    ``IN.mrc -o OUT.mrc`` writes ``OUT.mrc``; several MRC files, a STAR file, or an output
    that is a folder (an existing one, or a name without an MRC extension) write
    ``OUT_DIR/<input stem>_corrected.mrc`` (the folder is created if missing).  With
    ``samples >= 2`` every output ``X.mrc`` gets ``X_std.mrc`` beside it.  A STAR input
    also writes ``OUT_DIR/<star stem>_corrected.star``.

    Raises
    ------
    InputError
        Mixed STAR/MRC inputs, several inputs for one output file, two inputs with the
        same output name, or an unreadable STAR file.
    OutputError
        The output folder cannot be created.
    """
    from cryogen.io import MRC_EXTENSIONS, derived_path, tomogram_sources

    found, star = tomogram_sources(inputs)
    sources = [
        (
            s.path,
            pixel_size if pixel_size is not None else s.pixel_size,
            (s.tilt_min, s.tilt_max),
            s.where,
        )
        for s in found
    ]
    to_folder = (
        star is not None
        or len(inputs) > 1
        or output.is_dir()
        or output.suffix.lower() not in MRC_EXTENSIONS
    )
    if to_folder:
        if output.suffix.lower() in MRC_EXTENSIONS and not output.is_dir():
            raise InputError(
                f"{len(sources)} tomograms need an output folder, not the file name {output}"
            )
        if output.exists() and not output.is_dir():
            raise OutputError(f"{output} is a file; give a folder for the outputs")
        if not output.exists():
            if not output.parent.is_dir():
                raise OutputError(f"cannot create {output}: {output.parent} does not exist")
            try:
                output.mkdir()
            except OSError as exc:
                raise OutputError(f"cannot create the folder {output}: {exc.strerror}") from None
    jobs: list[Job] = []
    for path, px, tilt, where in sources:
        out = derived_path(path, CORRECTED_SUFFIX, ".mrc", output) if to_folder else output
        std = derived_path(out, STD_SUFFIX, ".mrc") if samples >= 2 else None
        jobs.append(Job(Path(path), out, std, px, tilt, where))
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
    star_out = derived_path(star, CORRECTED_SUFFIX, ".star", output) if star is not None else None
    return jobs, star_out


def _write_corrected_star(star: Path, jobs: list[Job], star_out: Path, overwrite: bool) -> None:
    """The input STAR with ``rlnCorrectedTomoName`` set, its paths rebased for the new
    file's folder (so that they still resolve)."""
    from cryogen.io import CORRECTED_TOMO_NAME, read_star, rebase_paths, relative_path, write_star

    frame = rebase_paths(read_star(star), star.parent, star_out.parent)
    frame[CORRECTED_TOMO_NAME] = [relative_path(j.output, star_out.parent) for j in jobs]
    write_star(star_out, frame, overwrite=overwrite)


PREDICT_HELP = (
    "Correct whole tomograms with a trained generator, streamed tile by tile.\n\n"
    "Memory stays bounded whatever the tomogram's size: the input is memory-mapped and read "
    "slab by slab, and the output is written slab by slab into a memory-mapped MRC that "
    "appears under its name only when complete. Outputs keep the input's voxel size, origin, "
    "orientation and intensity scale."
)


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""
    from cryogen.cli.app import user_errors

    @app.command("predict", help=PREDICT_HELP)
    @user_errors
    def predict_cmd(
        model_path: Annotated[
            Path,
            typer.Argument(
                metavar="RUN_DIR|MODEL.pt",
                help="Run folder of `cryogen train` (its last.pt, else its newest snapshot) "
                "or a checkpoint file.",
                show_default=False,
            ),
        ],
        inputs: Annotated[
            list[Path],
            typer.Argument(
                metavar="IN.mrc [IN2.mrc ...] | TOMOS.star",
                help="Tomograms to correct (MRC), or one STAR file listing them "
                "(rlnTomoName; rlnPixelSize, rlnTiltMin, rlnTiltMax are used when present).",
                show_default=False,
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                metavar="OUT.mrc|OUT_DIR",
                help="Output MRC file (one input), or a folder (created if missing) that "
                "receives <input stem>_corrected.mrc per tomogram (several inputs, a STAR "
                "file, or a name without an MRC extension).",
                show_default=False,
            ),
        ],
        tile: Annotated[
            int | None,
            typer.Option(
                "--tile",
                min=8,
                help="Tile edge, voxels (default: the model's training crop size, 64 with "
                "both presets).",
                show_default=False,
            ),
        ] = None,
        overlap: Annotated[
            int,
            typer.Option(
                "--overlap",
                min=0,
                help="Least overlap of neighbouring tiles, voxels; blended with cosine ramps "
                "of this length (default: 16).",
                show_default=False,
            ),
        ] = 16,
        batch_size: Annotated[
            int,
            typer.Option(
                "--batch-size",
                min=1,
                help="Tiles per forward pass (default: 1; larger is faster on GPUs).",
                show_default=False,
            ),
        ] = 1,
        keep_measured: Annotated[
            bool,
            typer.Option(
                "--keep-measured",
                help="Keep the input's measured Fourier components exactly and take only the "
                "missing wedge from the model (whole-volume FFT; out of core on disk for large "
                "volumes) (default: off).",
            ),
        ] = False,
        tta: Annotated[
            bool,
            typer.Option(
                "--tta",
                help="Test-time augmentation: average each tile's prediction over the "
                "rotations that keep the missing wedge (4 for a symmetric tilt range, 2 for "
                "an asymmetric one; that many times the prediction time; measured +0.3 to "
                "+0.7 dB on the phantoms, docs/benchmarks.md) (default: off).",
            ),
        ] = False,
        samples: Annotated[
            int,
            typer.Option(
                "--samples",
                min=1,
                help="Generator passes with noise (sigma_g of training) at its input: the "
                "mean is the output and the per-voxel standard deviation is written as "
                "OUT_std.mrc (default: 1, one deterministic pass, no std map).",
                show_default=False,
            ),
        ] = 1,
        seed: Annotated[
            int,
            typer.Option(
                "--seed",
                min=0,
                help="Seed of the sampling noise (default: 0).",
                show_default=False,
            ),
        ] = 0,
        device: Annotated[
            str,
            typer.Option(
                "--device",
                help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps (default: auto).",
                show_default=False,
            ),
        ] = "auto",
        threads: Annotated[
            int | None,
            typer.Option(
                "--threads",
                min=1,
                help="CPU threads (default: torch's, which follows OMP_NUM_THREADS).",
                show_default=False,
            ),
        ] = None,
        tilt_min: Annotated[
            float | None,
            typer.Option(
                "--tilt-min",
                help="Lowest tilt angle of the input, degrees; the model must have been "
                "trained for it (default: the model's).",
                show_default=False,
            ),
        ] = None,
        tilt_max: Annotated[
            float | None,
            typer.Option(
                "--tilt-max",
                help="Highest tilt angle of the input, degrees (default: the model's).",
                show_default=False,
            ),
        ] = None,
        method: Annotated[
            Method | None,
            typer.Option(
                "--method",
                help="Refuse a model trained with another method: cryogen or isonet "
                "(default: accept either).",
                show_default=False,
            ),
        ] = None,
        beam_axis: Annotated[
            str,
            typer.Option(
                "--beam-axis",
                help="Axis of the input volumes along the beam: z (MRC nz) or y (IMOD tilt "
                "output without rotation); outputs keep the input's orientation (default: z).",
                show_default=False,
            ),
        ] = "z",
        pixel_size: Annotated[
            float | None,
            typer.Option(
                "--pixel-size",
                help="Voxel size in Å instead of the MRC header's or the STAR file's "
                "(default: the header's).",
                show_default=False,
            ),
        ] = None,
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Replace existing output files (default: off)."),
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", help="No progress bar (default: off).")
        ] = False,
    ) -> None:
        """Correct whole tomograms with a trained generator, streamed tile by tile."""
        from cryogen import distributed
        from cryogen.device import setup_threads
        from cryogen.io import check_output_path, read_volume
        from cryogen.predict import load_model, predict_file

        if beam_axis not in ("z", "y"):
            raise InputError(f"--beam-axis must be 'z' or 'y', got {beam_axis!r}")
        if tile is not None and overlap >= tile:
            raise InputError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")
        setup_threads(threads)
        jobs, star_out = plan_outputs(inputs, output, samples=samples, pixel_size=pixel_size)
        for job in jobs:
            if not job.input.is_file():
                raise InputError(f"{job.input}: file not found")
            for p in (job.output, job.std):
                if p is not None:
                    check_output_path(p, overwrite)
        if star_out is not None:
            check_output_path(star_out, overwrite)
        with distributed.session(device) as ctx:
            model = load_model(
                model_path,
                ctx.device,
                tilt_min=tilt_min,
                tilt_max=tilt_max,
                method=method.value if method else None,
            )
            roi = int(tile or model.crop_size)
            if overlap >= roi:
                raise InputError(f"--overlap ({overlap}) must be smaller than the tile ({roi})")
            for job in jobs:
                model.check_tilt_range(*job.tilt, job.where)
            if ctx.is_main:
                console.print(
                    f"model {model.path} ({model.method}, step {model.step}, tilt "
                    f"[{model.tilt_min:g}, {model.tilt_max:g}] deg) on {model.device}"
                )
            # under torchrun every rank has checked everything above; the tomograms are then
            # shared (largest first, round robin) and each output is written by one rank
            distributed.barrier(ctx, "output checks")
            by_size = sorted(jobs, key=lambda j: -j.input.stat().st_size)
            for job in distributed.shard(by_size):
                head = read_volume(
                    job.input, beam_axis=beam_axis, pixel_size=job.pixel_size, check_values=False
                )
                if abs(float(head.voxel_size) - model.voxel_size) > 0.02 * model.voxel_size:
                    err_console.print(
                        f"[yellow]warning:[/] {job.input} has voxel size {head.voxel_size:.4g} Å, "
                        f"the model was trained at {model.voxel_size:.4g} Å",
                        highlight=False,
                    )
                del head
                res = predict_file(
                    model,
                    job.input,
                    job.output,
                    std_path=job.std,
                    beam_axis=beam_axis,
                    pixel_size=job.pixel_size,
                    tile=tile,
                    overlap=overlap,
                    batch_size=batch_size,
                    samples=samples,
                    seed=seed,
                    keep_measured=keep_measured,
                    tta=tta,
                    overwrite=overwrite,
                    progress=not quiet,
                )
                extra = f" and {res.std}" if res.std is not None else ""
                rate = math.prod(res.shape) / max(res.seconds, 1e-9)
                console.print(
                    f"wrote {res.output}{extra}  shape {res.shape}  voxel size "
                    f"{res.voxel_size:g} Å  {res.seconds:.1f} s ({rate:.3g} voxels/s)",
                    highlight=False,
                )
            distributed.barrier(ctx, "all tomograms predicted")
            if star_out is not None and ctx.is_main:
                _write_corrected_star(inputs[0], jobs, star_out, overwrite)
                console.print(f"wrote {star_out}", highlight=False)
