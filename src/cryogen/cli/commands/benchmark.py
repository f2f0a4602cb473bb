"""``cryogen benchmark`` and ``cryogen demo``: train on phantoms with a known answer and print
the scores (:mod:`cryogen.benchmark`)."""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cryogen.cli.options import (
    Device,
    Method,
    Overwrite,
    Preset,
    PresetOption,
    Quiet,
    Seed,
    SetValues,
    TiltMax,
    TiltMin,
    minutes_option,
    option,
    parse_set_options,
    steps_option,
)
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.benchmark import BenchmarkSettings, Scores

__all__ = ["benchmark", "demo"]

console = Console()

#: How the benchmark makes the wedge: the choices of ``cryogen.corrupt.WEDGES``, spelled out
#: so that the help loads no torch (a test checks that they agree).
WEDGE_CHOICES = ("fourier", "tilt-series")
Wedge = Enum(  # type: ignore[misc]
    "Wedge", {w.replace("-", "_"): w for w in WEDGE_CHOICES}, type=str
)
DEFAULT_WEDGE = Wedge("fourier")

SCALE_FIT_CAPTION = "scores after a least-squares scale fit a*pred+b"

# ------------------------------------------------------------------------------ options
BenchMinutes = Annotated[
    float, minutes_option("Training budget per method, minutes of wall clock.")
]
DemoMinutes = Annotated[
    float | None,
    minutes_option(
        "Training budget in minutes of wall clock instead of steps (the scores then depend "
        "on the CPU and its load)."
    ),
]
BenchSteps = Annotated[
    int | None,
    steps_option(
        "Step budget per method instead of --minutes: equal steps separate a method's effect "
        "per step from its cost per step."
    ),
]
CaseName = Annotated[
    str,
    typer.Argument(
        help="Benchmark case: sphere, prism, prism-whole (the paper's whole-volume "
        "protocol), ribosome or crowded.",
        show_default=False,
    ),
]
Output = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="Output folder (created): results.json, results.md, figures, volumes/, runs/.",
        show_default=False,
    ),
]
Snr = Annotated[
    float | None,
    option(
        "snr",
        "--snr",
        min=1e-6,
        help="Add Gaussian noise at this SNR (signal variance / noise variance) "
        "(default: no noise).",
        show_default=False,
    ),
]
WedgeOption = Annotated[
    Wedge,
    option(
        "wedge",
        "--wedge",
        help="How the wedge is made: fourier (the mask T_M, the paper's protocol) or "
        "tilt-series (simulate a tilt series, weighted back-projection).",
    ),
]
TiltStep = Annotated[
    float,
    option(
        "tilt_step",
        "--tilt-step",
        min=0.1,
        help="Tilt increment with --wedge tilt-series, degrees.",
    ),
]
Size = Annotated[
    int | None,
    option(
        "size",
        "--size",
        min=16,
        help="Volume edge, voxels (default: sphere 140, prism 96, ribosome 64, crowded 128).",
        show_default=False,
    ),
]
CurvePoints = Annotated[
    int,
    option(
        "curve_points",
        "--curve-points",
        min=1,
        hidden=True,
        help="Checkpoints per method for the PSNR-time curve.",
    ),
]
Halves = Annotated[
    bool,
    option(
        "halves",
        "--halves",
        help="Make two half-sets of every volume (independent noise, each with twice the "
        "noise variance of their mean: the even and odd frames of one acquisition), train "
        "both methods on them (Noise2Noise: input from one half, target the other) and "
        "predict their mean; noisy tables add the best Gaussian blur of the input. Needs "
        "--snr, or --dose with --wedge tilt-series.",
    ),
]
HalfBlur = Annotated[
    str,
    option(
        "blur",
        "--blur",
        metavar="auto|none",
        help="With --halves, auto blurs each method's final prediction by the Gaussian width "
        "its half-sets choose, as `cryogen predict --blur auto` does (no truth used; the "
        "PSNR-time curve stays unblurred); none scores the networks' output as it is "
        "(default: auto).",
        show_default=False,
    ),
]
Dose = Annotated[
    float | None,
    option(
        "dose",
        "--dose",
        min=1e-6,
        help="Electron dose of the simulated tilt series, e/Å² over the series (with "
        "--wedge tilt-series and --halves: shot noise, split between the even and the odd "
        "frames) (default: none).",
        show_default=False,
    ),
]
Defocus = Annotated[
    float | None,
    option(
        "defocus",
        "--defocus",
        min=0.0,
        help="Defocus of the simulated tilt series' CTF, µm underfocus (with --wedge "
        "tilt-series and --halves; 300 kV, Cs 2.7 mm) (default: no CTF).",
        show_default=False,
    ),
]
Tta = Annotated[
    bool,
    option(
        "tta",
        "--tta",
        help="Predict both methods with the rotation average of `cryogen predict --tta` "
        "(every checkpoint: about 4x the scoring time).",
    ),
]
BenchMethods = Annotated[
    list[Method] | None,
    option(
        "methods",
        "--method",
        metavar="isonet|cryogen",
        help="Train only this method: isonet (IsoNet-style) or cryogen; repeat the option for "
        "both (default: both). With one method its rows are measured alone: no paired "
        "difference, no time to quality, and --concurrent does not apply.",
        show_default=False,
    ),
]
Concurrent = Annotated[
    bool | None,
    typer.Option(
        "--concurrent/--one-after-the-other",
        help="Train (and score) the two methods at the same time, each in its own process on "
        "half of the CPUs (both see the same machine load, and a CPU run takes about half the "
        "time: the cpu preset trains on one thread), or one after the other.  Default: at the "
        "same time when training on the CPU with at least two CPUs, else one after the other; "
        "with --resume, as the finished seeds ran.",
        show_default=False,
    ),
]
Repeats = Annotated[
    int,
    option(
        "repeats",
        "--repeats",
        min=1,
        help="Run the case with this many seeds (--seed, --seed + 1, ...), one folder "
        "DIR/seed_<S> each, and report medians and paired differences over them.",
    ),
]
Resume = Annotated[
    bool,
    option(
        "resume",
        "--resume",
        help="With --repeats: keep the seeds already finished in DIR (same settings) and run "
        "the others.",
    ),
]


# ------------------------------------------------------------------------------ helpers
def _say(msg: str) -> None:
    console.print(f"[dim]>[/] {msg}", highlight=False)


def _command_line() -> str:
    return shlex.join(["cryogen", *sys.argv[1:]])


def _score_table(title: str, caption: str, keys: tuple[str, ...] | list[str]) -> Table:
    from cryogen.metrics import METRICS

    table = Table(title=title, caption=caption)
    table.add_column("", no_wrap=True)
    for k in keys:
        table.add_column(METRICS[k].label, justify="right")
    return table


def _rows(table: Table, scores: dict[str, Scores], keys: tuple[str, ...] | list[str]) -> None:
    from cryogen.benchmark import METHOD_LABELS, ROWS, format_metric

    for row in (r for r in ROWS if r in scores):
        table.add_row(METHOD_LABELS[row], *(format_metric(k, scores[row].get(k)) for k in keys))


def _repeats(
    settings: BenchmarkSettings,
    output: Path,
    repeats: int,
    overwrite: bool,
    resume: bool,
    quiet: bool,
) -> None:
    from cryogen.benchmark import Scores, format_signed, run_benchmark_repeats

    results = run_benchmark_repeats(
        settings,
        output,
        repeats,
        overwrite=overwrite,
        resume=resume,
        progress=not quiet and console.is_terminal,
        say=_say,
        command=_command_line(),
    )
    summary = results.summary
    assert summary is not None  # every seed finished
    keys = ("psnr", "ssim_global", "wedge_corr", "res_z")
    table = _score_table(
        f"{settings.case}: medians over seeds {', '.join(map(str, results.seeds))}",
        f"{SCALE_FIT_CAPTION}; difference: CryoGEN - IsoNet-style of the same seed"
        if settings.compared
        else SCALE_FIT_CAPTION,
        keys,
    )
    _rows(table, {row: Scores(m) for row, m in summary.median.items()}, keys)
    paired = summary.paired
    if settings.compared:
        table.add_row("difference (median)", *(format_signed(k, paired[k].median) for k in keys))
        table.add_row("CryoGEN better on", *(f"{paired[k].ahead} of {paired[k].n}" for k in keys))
    console.print(table)
    console.print(f"wrote {output / 'results.json'}, results.md, repeats.png and seed_*/")


# ------------------------------------------------------------------------------ commands
def benchmark(
    case: CaseName,
    output: Output,
    minutes: BenchMinutes = 15.0,
    snr: Snr = None,
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    wedge: WedgeOption = DEFAULT_WEDGE,
    tilt_step: TiltStep = 3.0,
    seed: Seed = 0,
    device: Device = "auto",
    size: Size = None,
    preset: PresetOption = Preset.cpu,
    steps: BenchSteps = None,
    set_: SetValues = None,
    curve_points: CurvePoints = 10,
    tta: Tta = False,
    halves: Halves = False,
    blur: HalfBlur = "auto",
    dose: Dose = None,
    defocus: Defocus = None,
    methods: BenchMethods = None,
    concurrent: Concurrent = None,
    repeats: Repeats = 1,
    resume: Resume = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Train the IsoNet-style baseline and CryoGEN on a phantom with the same budget, seed
    and data, and score both against the truth (the paper's Table 1)."""
    from cryogen.benchmark import METHODS, BenchmarkSettings, run_benchmark

    chosen = [Method(m).value for m in methods or ()]

    settings = BenchmarkSettings(
        case=case,
        minutes=15.0 if minutes is None else minutes,
        steps=steps,
        snr=snr,
        tilt_min=tilt_min,
        tilt_max=tilt_max,
        wedge=Wedge(wedge).value,
        tilt_step=tilt_step,
        seed=seed,
        device=device,
        size=size,
        preset=(preset or Preset.cpu).value,
        overrides=parse_set_options(set_),
        curve_points=curve_points,
        tta=tta,
        concurrent=concurrent,
        halves=halves,
        dose=dose,
        defocus=defocus,
        blur=blur.strip().lower(),
        # the methods in the order they always run; one given twice is refused
        methods=tuple(sorted(chosen, key=METHODS.index)) if chosen else METHODS,
    )
    if repeats > 1:
        _repeats(settings, output, repeats, overwrite, resume, quiet)
        return
    if resume:
        raise InputError("--resume keeps finished seeds of a repeated benchmark: give --repeats N")
    results = run_benchmark(
        settings,
        output,
        overwrite=overwrite,
        progress=not quiet and console.is_terminal,
        say=_say,
        command=_command_line(),
    )
    from cryogen.metrics import METRICS

    keys = [k for k in METRICS if k != "mse"]
    table = _score_table(
        f"{case}: mean over {results.n_volumes} volume(s)", SCALE_FIT_CAPTION, keys
    )
    _rows(table, results.scores, keys)
    console.print(table)
    console.print(f"wrote {output / 'results.json'}, results.md, figures and volumes/")


def demo(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder (created): figure.png, scores.json, volumes, run/.",
        ),
    ] = Path("demo_out"),
    minutes: DemoMinutes = None,
    size: Annotated[
        int, typer.Option("--size", min=16, help="Edge of the sphere volume, voxels.")
    ] = 64,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            help="Training budget in steps (default: 600, the same scores on every CPU).",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            hidden=True,
            help="Override a training config field, KEY=VALUE (JSON value), repeatable.",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """The shortest benchmark: a hollow sphere, a +-60 deg missing wedge, CryoGEN trained
    for a fixed number of steps on the CPU; prints the scores and writes a figure."""
    from cryogen.benchmark import DEMO_METRICS, format_metric, run_demo
    from cryogen.metrics import METRICS

    res = run_demo(
        output,
        minutes=minutes,
        size=size,
        steps=steps,
        overrides=parse_set_options(set_),
        overwrite=overwrite,
        progress=console.is_terminal,
        say=_say,
    )
    table = Table(
        title=f"sphere {size}^3, +-60 deg wedge; CryoGEN {res.steps} steps ({res.minutes:.1f} min)",
        caption=SCALE_FIT_CAPTION,
    )
    table.add_column("metric")
    table.add_column("corrupted", justify="right")
    table.add_column("corrected", justify="right")
    for k in DEMO_METRICS:
        table.add_row(
            METRICS[k].label,
            format_metric(k, res.corrupted.get(k)),
            format_metric(k, res.corrected.get(k)),
        )
    console.print(table)
    console.print(
        f"wrote {output / 'figure.png'} and {output / 'scores.json'} "
        f"({res.total_minutes:.1f} min in all)"
    )
