"""The ``cryogen`` command line: thin commands that read files, call a function, write files."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cryogen.cli.options import (
    ADVICE,
    FLAGS,
    BeamAxis,
    Overwrite,
    PhantomName,
    PixelSize,
    TiltMax,
    TiltMin,
)
from cryogen.errors import CryogenError, InputError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="CryoGEN-ET: restore the missing wedge of cryo-electron tomograms.",
)
console = Console()
err_console = Console(stderr=True)
logger = logging.getLogger("cryogen")

F = TypeVar("F", bound=Callable[..., Any])


def user_message(exc: BaseException) -> str:
    """An error's message in the command line's terms: parameter names become flags
    (``tilt_min`` -> ``--tilt-min``) and its ``advice`` is added."""
    text = str(exc)
    names = [n for n in FLAGS if "_" in n]
    if names:
        pattern = r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])"
        text = re.sub(pattern, lambda m: FLAGS[m.group(1)], text)
    advice = ADVICE.get(getattr(exc, "advice", None) or "")
    return f"{text}; {advice}" if advice else text


def user_errors(func: F) -> F:
    """Print a ``CryogenError`` (and common OS errors) as one line and exit with code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CryogenError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            err_console.print(
                f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if "RANK" in os.environ:  # under torchrun, log messages come once, from rank 0
        from cryogen.distributed import silence_other_ranks

        silence_other_ranks()


def _check_beam_axis(beam_axis: str) -> str:
    if beam_axis not in ("z", "y"):
        raise InputError(f"--beam-axis must be 'z' or 'y', got {beam_axis!r}")
    return beam_axis


# ---------------------------------------------------------------- phantom
@app.command()
@user_errors
def phantom(
    name: Annotated[PhantomName, typer.Argument(help="Which phantom to build.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output MRC file.")],
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=8,
            help="Edge length in voxels (default: sphere 140, prism 96, ribosome: fits the "
            "molecule, crowded 128).",
        ),
    ] = None,
    pixel_size: Annotated[
        float | None,
        typer.Option(
            "--pixel-size",
            min=0.1,
            help="Voxel size in Å (default: 1.0 for sphere and prism, 10.0 for ribosome and "
            "crowded).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (prism orientation, crowded scene).")
    ] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Write a benchmark phantom (appendix A.7 of the paper) as an MRC volume."""
    from cryogen.io import check_output_path, write_volume
    from cryogen.phantoms import make_phantom

    check_output_path(output, overwrite)
    with console.status(f"building the {name.value} phantom"):
        vol, voxel = make_phantom(name.value, size=size, pixel_size=pixel_size, seed=seed)
    write_volume(output, vol.numpy(), voxel_size=voxel, overwrite=overwrite)
    console.print(f"wrote {output}  shape {tuple(vol.shape)}  voxel size {voxel:g} Å")


# ---------------------------------------------------------------- corrupt
@app.command()
@user_errors
def corrupt(
    input: Annotated[Path, typer.Argument(help="Clean volume (MRC).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output MRC file.")],
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    snr: Annotated[
        float | None,
        typer.Option(
            "--snr",
            min=1e-6,
            help="Add Gaussian noise inside the measured region so that signal variance over "
            "noise variance equals this value in the output (default: no noise).",
        ),
    ] = None,
    soft_edge: Annotated[
        float, typer.Option("--soft-edge", min=0.0, help="Soft wedge edge width, Fourier pixels.")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the noise.")] = 0,
    beam_axis: BeamAxis = "z",
    pixel_size: PixelSize = None,
    overwrite: Overwrite = False,
) -> None:
    """Remove the missing wedge of a tilt range from a volume (T_M), optionally add noise."""
    import torch

    from cryogen.corrupt import corrupt as corrupt_volume
    from cryogen.io import check_output_path, read_volume, write_volume

    check_output_path(output, overwrite)
    vol = read_volume(input, beam_axis=_check_beam_axis(beam_axis), pixel_size=pixel_size)
    x = torch.from_numpy(vol.load()).to(torch.float32)
    y = corrupt_volume(x, tilt_min, tilt_max, snr=snr, seed=seed, soft_edge=soft_edge)
    write_volume(
        output, y.numpy(), voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
    )
    extra = f", SNR {snr:g}" if snr is not None else ""
    console.print(f"wrote {output}  wedge [{tilt_min:g}, {tilt_max:g}] deg{extra}")


# ---------------------------------------------------------------- evaluate
def print_scores(scores: dict[str, Any], title: str) -> None:
    from cryogen.metrics import METRIC_DESCRIPTIONS

    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for key, desc in METRIC_DESCRIPTIONS.items():
        if key in scores:
            v = scores[key]
            table.add_row(key, f"{v:.4f}" if isinstance(v, float) else str(v), desc)
    console.print(table)


@app.command()
@user_errors
def evaluate(
    prediction: Annotated[Path, typer.Argument(help="Volume to score (MRC).")],
    truth: Annotated[Path, typer.Option("--truth", help="Ground-truth volume (MRC), same shape.")],
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    scale_fit: Annotated[
        bool,
        typer.Option(
            "--scale-fit/--no-scale-fit",
            help="Fit a*pred+b to the truth by least squares before scoring (default on; "
            "reported in the output).",
        ),
    ] = True,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Score a volume against the truth: PSNR, SSIM (global and windowed), wedge correlation,
    resolution along z and x from conical FSC."""
    from cryogen.io import check_output_path, read_volume, write_json
    from cryogen.metrics import evaluate as run_evaluate

    if json_out is not None:
        check_output_path(json_out, overwrite)
    pred = read_volume(prediction, check_values=True)
    gt = read_volume(truth, check_values=True)
    if pred.data.shape != gt.data.shape:
        raise InputError(
            f"{prediction}: shape {pred.data.shape} differs from the truth {truth}: {gt.data.shape}"
        )
    with console.status("scoring"):
        scores = run_evaluate(
            pred.data,
            gt.data,
            tilt_min=tilt_min,
            tilt_max=tilt_max,
            scale_fit=scale_fit,
            voxel_size=gt.voxel_size,
        )
    scores = {"prediction": str(prediction), "truth": str(truth), **scores}
    note = "least-squares scale fit a*pred+b applied" if scale_fit else "no scale fit"
    print_scores(scores, f"{prediction.name} vs {truth.name} ({note})")
    if json_out is not None:
        write_json(json_out, scores, nonfinite="string")
        console.print(f"wrote {json_out}")


# ---------------------------------------------------------------- show
@app.command()
@user_errors
def show(
    volumes: Annotated[list[Path], typer.Argument(help="One or more volumes (MRC).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output PNG file.")],
    beam_axis: BeamAxis = "z",
    overwrite: Overwrite = False,
) -> None:
    """Central XY, XZ, YZ slices and central Fourier slices, one column per volume."""
    from cryogen.figures import ortho_and_fourier_figure
    from cryogen.io import check_output_path, read_volume

    check_output_path(output, overwrite)
    if output.suffix.lower() != ".png":
        raise InputError(f"{output}: the figure is written as PNG; use a .png name")
    vols = [
        read_volume(p, beam_axis=_check_beam_axis(beam_axis), check_values=False) for p in volumes
    ]
    ortho_and_fourier_figure(
        [v.data for v in vols], [p.name for p in volumes], output, voxel_size=vols[0].voxel_size
    )
    console.print(f"wrote {output}")


def register(name: str, func: Callable[..., Any], **kwargs: Any) -> None:
    """Add ``func`` to ``app`` as the command ``name``, its errors printed as one line."""
    app.command(name, **kwargs)(user_errors(func))


def _register_commands() -> None:
    """Every command, in the order ``cryogen --help`` lists them (one line each)."""
    # -- predict: begin
    # -- predict: end
    # -- benchmark: begin
    # -- benchmark: end
    _register_legacy()


# Modules that still add commands through a ``register(app)`` function (being moved to
# cryogen.cli.commands).
LEGACY_COMMAND_MODULES = [
    "cryogen.cli_train",
    "cryogen.cli_predict",
    "cryogen.cli_prep",
    "cryogen.cli_bench",
]


def _register_legacy() -> None:
    import importlib

    for name in LEGACY_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("interrupted")
        sys.exit(130)
