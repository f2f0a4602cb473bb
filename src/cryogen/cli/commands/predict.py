"""``cryogen predict``: correct whole tomograms with a trained generator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cryogen.cli.options import (
    BeamAxis,
    Device,
    Method,
    Overwrite,
    PixelSize,
    Quiet,
    Seed,
    Threads,
    option,
    tilt_max_option,
    tilt_min_option,
)
from cryogen.cli.pairs import halves_option, pairs
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.predict import Job, LoadedModel, PredictOptions

__all__ = ["HELP", "predict"]

console = Console()
err_console = Console(stderr=True)

HELP = (
    "Correct whole tomograms with a trained generator, streamed tile by tile.\n\n"
    "Memory stays bounded whatever the tomogram's size: the input is memory-mapped and read "
    "slab by slab, and the output is written slab by slab into a memory-mapped MRC that "
    "appears under its name only when complete. Outputs keep the input's voxel size, origin, "
    "orientation and intensity scale. CPU threads default to every CPU available "
    "(OMP_NUM_THREADS when set)."
)

# ------------------------------------------------------------------------------ options
TiltMin = Annotated[
    float | None,
    tilt_min_option(
        "Lowest tilt angle of the input, degrees; the model must have been trained for it "
        "(default: the model's)."
    ),
]
TiltMax = Annotated[
    float | None,
    tilt_max_option("Highest tilt angle of the input, degrees (default: the model's)."),
]
ModelPath = Annotated[
    Path,
    typer.Argument(
        metavar="RUN_DIR|MODEL.pt",
        help="Run folder of `cryogen train` (its last.pt, else its newest snapshot) "
        "or a checkpoint file.",
        show_default=False,
    ),
]
Inputs = Annotated[
    list[Path],
    typer.Argument(
        metavar="IN.mrc [IN2.mrc ...] | TOMOS.star",
        help="Tomograms to correct (MRC), or one STAR file listing them "
        "(rlnTomoName; rlnPixelSize, rlnTiltMin, rlnTiltMax are used when present).",
        show_default=False,
    ),
]
Output = Annotated[
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
]
Tile = Annotated[
    int | None,
    option(
        "tile",
        "--tile",
        min=8,
        help="Tile edge, voxels (default: the model's training crop size, 64 with both presets).",
        show_default=False,
    ),
]
Overlap = Annotated[
    int,
    option(
        "overlap",
        "--overlap",
        min=0,
        help="Least overlap of neighbouring tiles, voxels; blended with cosine ramps "
        "of this length (default: 16).",
        show_default=False,
    ),
]
BatchSize = Annotated[
    int,
    option(
        "batch_size",
        "--batch-size",
        min=1,
        help="Tiles per forward pass (default: 1; larger is faster on GPUs).",
        show_default=False,
    ),
]
KeepMeasured = Annotated[
    bool,
    option(
        "keep_measured",
        "--keep-measured",
        help="Keep the input's measured Fourier components exactly and take only the "
        "missing wedge from the model (whole-volume FFT; out of core on disk for large "
        "volumes) (default: off). Refused for a model trained on half-sets: its output is "
        "denoised where the input was measured too, and this would put the noise back.",
    ),
]
Tta = Annotated[
    bool,
    option(
        "tta",
        "--tta",
        help="Test-time augmentation: average each tile's prediction over the "
        "rotations that keep the missing wedge (4 for a symmetric tilt range, 2 for "
        "an asymmetric one; that many times the prediction time; measured +0.3 to "
        "+0.7 dB on the phantoms, docs/benchmarks.md) (default: off).",
    ),
]
Samples = Annotated[
    int,
    option(
        "samples",
        "--samples",
        min=1,
        help="Generator passes with noise (sigma_g of training) at its input: the "
        "mean is the output and the per-voxel standard deviation is written as "
        "OUT_std.mrc (default: 1, one deterministic pass, no std map).",
        show_default=False,
    ),
]
Halves = Annotated[
    list[Path] | None,
    halves_option(
        "The two half-sets (even/odd frames or tilts) of each tomogram, repeatable, one pair "
        "per tomogram in order (a STAR file names them in its "
        "rlnTomoReconstructedTomogramHalf1/2 columns). They choose --blur auto's width."
    ),
]
Blur = Annotated[
    str,
    option(
        "blur",
        "--blur",
        metavar="auto|none|SIGMA",
        help="Gaussian blur of the output, sigma in voxels, or none. auto: for a model "
        "trained on half-sets, given the tomogram's half-sets, the width that best predicts "
        "each half-set from the other's prediction where it was measured (a central region "
        "of each half-set, at most 160 voxels along each axis, is predicted for it); no blur "
        "otherwise. Measured +0.2 to +1.4 dB on noisy phantoms (docs/benchmarks.md) "
        "(default: auto).",
        show_default=False,
    ),
]
ModelMethod = Annotated[
    Method | None,
    option(
        "method",
        "--method",
        help="Refuse a model trained with another method: cryogen or isonet "
        "(default: accept either).",
        show_default=False,
    ),
]


# ------------------------------------------------------------------------------ command
def predict(
    model_path: ModelPath,
    inputs: Inputs,
    output: Output,
    tile: Tile = None,
    overlap: Overlap = 16,
    batch_size: BatchSize = 1,
    keep_measured: KeepMeasured = False,
    tta: Tta = False,
    samples: Samples = 1,
    seed: Seed = 0,
    device: Device = "auto",
    threads: Threads = None,
    tilt_min: TiltMin = None,
    tilt_max: TiltMax = None,
    method: ModelMethod = None,
    halves: Halves = None,
    blur: Blur = "auto",
    beam_axis: BeamAxis = "z",
    pixel_size: PixelSize = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Correct whole tomograms with a trained generator, streamed tile by tile."""
    from cryogen import distributed
    from cryogen.device import setup_threads
    from cryogen.predict import PredictOptions, load_model, plan_outputs, predict_file

    if beam_axis not in ("z", "y"):
        raise InputError(f"beam_axis must be 'z' or 'y', got {beam_axis!r}")
    options = PredictOptions(
        tile=tile, overlap=overlap, batch_size=batch_size, samples=samples, seed=seed,
        keep_measured=keep_measured, tta=tta,
    )  # fmt: skip
    options.check()
    fixed_blur = parse_blur(blur)
    setup_threads(threads)
    plan = plan_outputs(
        inputs, output, samples=samples, pixel_size=pixel_size, halves=pairs(halves)
    )
    plan.check_files(overwrite, inputs=[model_path])
    # a bad tomogram or half-set fails before the model loads
    _check_inputs(plan.jobs, beam_axis, tilt_min, tilt_max)
    with distributed.session(device) as ctx:
        model = load_model(
            model_path,
            ctx.device,
            tilt_min=tilt_min,
            tilt_max=tilt_max,
            method=method.value if method else None,
        )
        options.tile_for(model.crop_size)
        ranges = {job.output: _input_range(model, job, tilt_min, tilt_max) for job in plan.jobs}
        if ctx.is_main:
            trained = ", ".join(f"[{a:g}, {b:g}]" for a, b in model.trained_ranges())
            console.print(
                f"model {model.path} ({model.method}, step {model.step}, tilt {trained} deg) "
                f"on {model.device}"
            )
        # under torchrun every rank has checked everything above; the tomograms are then
        # shared (largest first, round robin) and each output is written by one rank
        distributed.barrier(ctx, "output checks")
        for job in distributed.shard(plan.largest_first()):
            _warn_voxel_size(model, job, beam_axis)
            job_options = replace(options, tilt_range=ranges[job.output])
            job_options = replace(
                job_options, blur=_job_blur(model, job, job_options, fixed_blur, beam_axis)
            )
            res = predict_file(
                model, job.input, job.output, job_options, std_path=job.std,
                beam_axis=beam_axis, pixel_size=job.pixel_size, overwrite=overwrite,
                progress=not quiet,
            )  # fmt: skip
            extra = f" and {res.std}" if res.std is not None else ""
            rate = math.prod(res.shape) / max(res.seconds, 1e-9)
            console.print(
                f"wrote {res.output}{extra}  shape {res.shape}  voxel size "
                f"{res.voxel_size:g} Å  {res.seconds:.1f} s ({rate:.3g} voxels/s)",
                highlight=False,
            )
        distributed.barrier(ctx, "all tomograms predicted")
        if ctx.is_main and plan.write_star(overwrite) is not None:
            console.print(f"wrote {plan.star_out}", highlight=False)


def parse_blur(value: str) -> float | None:
    """``--blur``: a sigma in voxels, 0 for ``none``, ``None`` for ``auto``."""
    v = value.strip().lower()
    if v == "auto":
        return None
    if v in ("none", "off"):
        return 0.0
    try:
        sigma = float(v)
    except ValueError:
        sigma = math.nan
    if not sigma >= 0 or math.isinf(sigma):
        raise InputError(f"--blur takes auto, none or a sigma >= 0 in voxels, got {value!r}")
    return sigma


def _job_blur(
    model: LoadedModel, job: Job, options: PredictOptions, fixed: float | None, beam_axis: str
) -> float:
    """The blur of one tomogram: ``--blur``'s value, or with auto the width its half-sets
    choose (none for a model not trained on half-sets, or a tomogram without them)."""
    from cryogen.io import read_volume
    from cryogen.predict.bounded_io import release
    from cryogen.predict.half_blur import choose_half_set_blur

    if fixed is not None:
        return fixed
    if not model.half_sets:
        return 0.0
    if job.halves is None:
        console.print(
            f"{job.input.name}: not blurred; the model was trained on half-sets: give its "
            "half-sets (--halves EVEN ODD, or a STAR file's half-set columns) to choose a blur "
            "from them",
            highlight=False,
        )
        return 0.0
    # shapes, voxel sizes and tilt ranges were checked against the tomogram by _check_inputs
    vols = [
        read_volume(p, beam_axis=beam_axis, pixel_size=job.pixel_size, check_values=False)
        for p in job.halves
    ]
    try:
        choice = choose_half_set_blur(model, vols[0].data, vols[1].data, options)
    finally:
        release(*(v.data for v in vols))
    console.print(f"{job.input.name}: {choice.describe()}", highlight=False)
    return choice.sigma


def _input_range(
    model: LoadedModel, job: Job, tilt_min: float | None, tilt_max: float | None
) -> tuple[float, float]:
    """A tomogram's tilt range: recorded with it (STAR row, ``.tlt``), else the flags, else
    the model's; refused unless the model was trained for it."""
    return model.check_tilt_range(*_given_tilt(job, tilt_min, tilt_max), job.where)


def _given_tilt(
    job: Job, tilt_min: float | None, tilt_max: float | None
) -> tuple[float | None, float | None]:
    """Each end of a tomogram's tilt range recorded with it, else the flag's (``None``:
    neither)."""
    return (
        job.tilt[0] if job.tilt[0] is not None else tilt_min,
        job.tilt[1] if job.tilt[1] is not None else tilt_max,
    )


def _check_inputs(
    jobs: Sequence[Job], beam_axis: str, tilt_min: float | None, tilt_max: float | None
) -> None:
    """Read every input's header (an MRC volume with a voxel size) and its half-sets'
    (the tomogram's shape, voxel size and tilt range), before any model loads."""
    from cryogen.io import read_volume
    from cryogen.io.half_set_check import HalfSetHeader, check_half_sets

    for job in jobs:
        head = read_volume(
            job.input, beam_axis=beam_axis, pixel_size=job.pixel_size, check_values=False
        )
        if job.halves is None:
            continue
        halves = []
        for path in job.halves:
            half = read_volume(
                path, beam_axis=beam_axis, pixel_size=job.pixel_size, check_values=False
            )
            halves.append(HalfSetHeader(path, tuple(half.shape), float(half.voxel_size)))
        t0, t1 = _given_tilt(job, tilt_min, tilt_max)
        tilt = None if t0 is None or t1 is None else (t0, t1)
        check_half_sets(job.where, halves, tuple(head.shape), float(head.voxel_size), tilt)


def _warn_voxel_size(model: LoadedModel, job: Job, beam_axis: str) -> None:
    """Warn when a tomogram's voxel size is more than 2% off the model's."""
    from cryogen.io import read_volume

    head = read_volume(
        job.input, beam_axis=beam_axis, pixel_size=job.pixel_size, check_values=False
    )
    if abs(float(head.voxel_size) - model.voxel_size) > 0.02 * model.voxel_size:
        err_console.print(
            f"[yellow]warning:[/] {job.input} has voxel size {head.voxel_size:.4g} Å, "
            f"the model was trained at {model.voxel_size:.4g} Å",
            highlight=False,
        )
