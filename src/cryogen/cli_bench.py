"""The ``cryogen benchmark`` and ``cryogen demo`` commands (registered by ``cryogen.cli``).

Both are thin: they check the options, call :func:`cryogen.benchmark.run_benchmark` or
:func:`cryogen.benchmark.run_demo`, and print progress lines and the score table.  User errors
are ``CryogenError`` subclasses, which ``cryogen.cli`` prints as one line.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["register"]

console = Console()


def _say(msg: str) -> None:
    console.print(f"[dim]>[/] {msg}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` and ``demo`` commands to ``app``."""
    from cryogen.cli.app import user_errors

    @app.command("benchmark")
    @user_errors
    def benchmark_cmd(
        case: Annotated[
            str,
            typer.Argument(
                help="Benchmark case: sphere, prism, ribosome or crowded.", show_default=False
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Output folder (created): results.json, results.md, figures, volumes/, runs/.",
                show_default=False,
            ),
        ],
        minutes: Annotated[
            float,
            typer.Option(
                "--minutes", min=0.01, help="Training budget per method, minutes of wall clock."
            ),
        ] = 15.0,
        snr: Annotated[
            float | None,
            typer.Option(
                "--snr",
                min=1e-6,
                help="Add Gaussian noise at this SNR (signal variance / noise variance) "
                "(default: no noise).",
                show_default=False,
            ),
        ] = None,
        tilt_min: Annotated[
            float, typer.Option("--tilt-min", help="Lowest tilt angle, degrees.")
        ] = -60.0,
        tilt_max: Annotated[
            float, typer.Option("--tilt-max", help="Highest tilt angle, degrees.")
        ] = 60.0,
        wedge: Annotated[
            str,
            typer.Option(
                "--wedge",
                help="How the wedge is made: fourier (the mask T_M, the paper's protocol) or "
                "tilt-series (simulate a tilt series, weighted back-projection).",
            ),
        ] = "fourier",
        tilt_step: Annotated[
            float,
            typer.Option(
                "--tilt-step", min=0.1, help="Tilt increment with --wedge tilt-series, degrees."
            ),
        ] = 3.0,
        seed: Annotated[
            int, typer.Option("--seed", min=0, help="Random seed (phantoms, noise, training).")
        ] = 0,
        device: Annotated[
            str,
            typer.Option("--device", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps."),
        ] = "auto",
        size: Annotated[
            int | None,
            typer.Option(
                "--size",
                min=16,
                help="Volume edge, voxels (default: sphere 140, prism 96, ribosome 64, "
                "crowded 128).",
                show_default=False,
            ),
        ] = None,
        preset: Annotated[
            str,
            typer.Option(
                "--preset", help="Training preset: cpu (small networks) or paper (for GPUs)."
            ),
        ] = "cpu",
        steps: Annotated[
            int | None,
            typer.Option(
                "--steps",
                min=1,
                help="Step budget per method instead of --minutes: equal steps separate a "
                "method's effect per step from its cost per step.",
                show_default=False,
            ),
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="Override a training config field for both methods, KEY=VALUE (JSON "
                "value), repeatable, e.g. --set crop_size=96.",
                show_default=False,
            ),
        ] = None,
        curve_points: Annotated[
            int,
            typer.Option(
                "--curve-points",
                min=1,
                hidden=True,
                help="Checkpoints per method for the PSNR-time curve.",
            ),
        ] = 10,
        tta: Annotated[
            bool,
            typer.Option(
                "--tta",
                help="Predict both methods with the rotation average of `cryogen predict "
                "--tta` (every checkpoint: about 4x the scoring time).",
            ),
        ] = False,
        concurrent: Annotated[
            bool | None,
            typer.Option(
                "--concurrent/--one-after-the-other",
                help="Train (and score) the two methods at the same time, each in its own "
                "process on half of the CPUs (both see the same machine load, and a CPU run "
                "takes about half the time: the cpu preset trains on one thread), or one "
                "after the other.  Default: at the same time when training on the CPU with "
                "at least two CPUs, else one after the other; with --resume, as the "
                "finished seeds ran.",
                show_default=False,
            ),
        ] = None,
        repeats: Annotated[
            int,
            typer.Option(
                "--repeats",
                min=1,
                help="Run the case with this many seeds (--seed, --seed + 1, ...), one folder "
                "DIR/seed_<S> each, and report medians and paired differences over them.",
            ),
        ] = 1,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="With --repeats: keep the seeds already finished in DIR (same settings) "
                "and run the others.",
            ),
        ] = False,
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Run again in a folder that holds results."),
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    ) -> None:
        """Train the IsoNet-style baseline and CryoGEN on a phantom with the same budget, seed
        and data, and score both against the truth (the paper's Table 1)."""
        from cryogen.benchmark import METHOD_LABELS, TABLE_METRICS, BenchmarkSettings, format_metric
        from cryogen.benchmark import run_benchmark as run
        from cryogen.cli_train import parse_set_options
        from cryogen.errors import InputError

        settings = BenchmarkSettings(
            case=case,
            minutes=minutes,
            steps=steps,
            snr=snr,
            tilt_min=tilt_min,
            tilt_max=tilt_max,
            wedge=wedge,
            tilt_step=tilt_step,
            seed=seed,
            device=device,
            size=size,
            preset=preset,
            overrides=parse_set_options(set_),
            curve_points=curve_points,
            tta=tta,
            concurrent=concurrent,
        )
        if repeats > 1:
            _run_repeats(settings, output, repeats, overwrite, resume, quiet)
            return
        if resume:
            raise InputError(
                "--resume keeps finished seeds of a repeated benchmark: give --repeats N"
            )
        results = run(
            settings,
            output,
            overwrite=overwrite,
            progress=not quiet and console.is_terminal,
            say=_say,
            command=shlex.join(["cryogen", *sys.argv[1:]]),
        )
        table = Table(
            title=f"{case}: mean over {results['n_volumes']} volume(s)",
            caption="scores after a least-squares scale fit a*pred+b",
        )
        table.add_column("", no_wrap=True)
        keys = [k for k in TABLE_METRICS if k != "mse"]
        for k in keys:
            table.add_column(TABLE_METRICS[k][0], justify="right")
        for row in ("corrupted", "isonet", "cryogen"):
            sc = results["scores"][row]
            table.add_row(METHOD_LABELS[row], *(format_metric(k, sc.get(k)) for k in keys))
        console.print(table)
        console.print(f"wrote {output / 'results.json'}, results.md, figures and volumes/")

    def _run_repeats(
        settings: Any, output: Path, repeats: int, overwrite: bool, resume: bool, quiet: bool
    ) -> None:
        from cryogen.benchmark import METHOD_LABELS, METHODS, TABLE_METRICS, format_metric
        from cryogen.benchmark_repeats import _signed, run_benchmark_repeats

        results = run_benchmark_repeats(
            settings,
            output,
            repeats,
            overwrite=overwrite,
            resume=resume,
            progress=not quiet and console.is_terminal,
            say=_say,
            command=shlex.join(["cryogen", *sys.argv[1:]]),
        )
        summary = results["summary"]
        table = Table(
            title=f"{settings.case}: medians over seeds {', '.join(map(str, results['seeds']))}",
            caption="scores after a least-squares scale fit a*pred+b; difference: CryoGEN - "
            "IsoNet-style of the same seed",
        )
        table.add_column("", no_wrap=True)
        keys = ("psnr", "ssim_global", "wedge_corr", "res_z")
        for k in keys:
            table.add_column(TABLE_METRICS[k][0], justify="right")
        for row in ("corrupted", *METHODS):
            table.add_row(
                METHOD_LABELS[row], *(format_metric(k, summary["median"][row].get(k)) for k in keys)
            )
        paired = summary["paired"]
        table.add_row(
            "difference (median)",
            *(_signed(k, paired[k]["median"]) for k in keys),
        )
        table.add_row(
            "CryoGEN better on", *(f"{paired[k]['ahead']} of {paired[k]['n']}" for k in keys)
        )
        console.print(table)
        console.print(f"wrote {output / 'results.json'}, results.md, repeats.png and seed_*/")

    @app.command("demo")
    @user_errors
    def demo_cmd(
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Output folder (created): figure.png, scores.json, volumes, run/.",
            ),
        ] = Path("demo_out"),
        minutes: Annotated[
            float,
            typer.Option("--minutes", min=0.01, help="Training budget, minutes of wall clock."),
        ] = 3.0,
        size: Annotated[
            int, typer.Option("--size", min=16, help="Edge of the sphere volume, voxels.")
        ] = 64,
        steps: Annotated[
            int | None,
            typer.Option(
                "--steps", min=1, hidden=True, help="Step budget instead of --minutes (tests)."
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
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Run again in a folder that holds a demo."),
        ] = False,
    ) -> None:
        """The shortest benchmark: a hollow sphere, a +-60 deg missing wedge, CryoGEN trained
        for a few minutes on the CPU; prints the scores and writes a figure."""
        from cryogen.benchmark import DEMO_METRICS, TABLE_METRICS, format_metric
        from cryogen.benchmark import run_demo as run
        from cryogen.cli_train import parse_set_options

        res = run(
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
            title=f"sphere {size}^3, +-60 deg wedge; CryoGEN {res['training']['steps']} steps "
            f"({res['training']['minutes']:.1f} min)",
            caption="scores after a least-squares scale fit a*pred+b",
        )
        table.add_column("metric")
        table.add_column("corrupted", justify="right")
        table.add_column("corrected", justify="right")
        for k in DEMO_METRICS:
            table.add_row(
                TABLE_METRICS[k][0],
                format_metric(k, res["corrupted"][k]),
                format_metric(k, res["corrected"][k]),
            )
        console.print(table)
        console.print(
            f"wrote {output / 'figure.png'} and {output / 'scores.json'} "
            f"({res['total_minutes']:.1f} min in all)"
        )
