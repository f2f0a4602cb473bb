"""``cryogen evaluate``: score a volume against the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cryogen.cli.options import (
    Overwrite,
    TiltMax,
    TiltMin,
)
from cryogen.errors import InputError

__all__ = ["evaluate", "print_scores"]

console = Console()
err_console = Console(stderr=True)


def print_scores(scores: dict[str, Any], title: str) -> None:
    """The scores of :func:`cryogen.metrics.evaluate` as a table: metric, value, meaning."""
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


# ------------------------------------------------------------------------------ options
Prediction = Annotated[Path, typer.Argument(help="Volume to score (MRC).")]
Truth = Annotated[Path, typer.Option("--truth", help="Ground-truth volume (MRC), same shape.")]
ScaleFit = Annotated[
    bool,
    typer.Option(
        "--scale-fit/--no-scale-fit",
        help="Fit a*pred+b to the truth by least squares before scoring (default on; "
        "reported in the output).",
    ),
]
JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
]


# ------------------------------------------------------------------------------ command
def evaluate(
    prediction: Prediction,
    truth: Truth,
    tilt_min: TiltMin = -60.0,
    tilt_max: TiltMax = 60.0,
    scale_fit: ScaleFit = True,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Score a volume against the truth: PSNR, SSIM (global and windowed), wedge correlation,
    resolution along z and x from conical FSC."""
    from cryogen.corrupt import check_tilt_range
    from cryogen.io import check_output_path, read_volume, write_json
    from cryogen.metrics import evaluate as run_evaluate

    if json_out is not None:
        check_output_path(json_out, overwrite, inputs=[prediction, truth])
    check_tilt_range(tilt_min, tilt_max)
    pred = read_volume(prediction, check_values=True)
    gt = read_volume(truth, check_values=True)
    if pred.data.shape != gt.data.shape:
        raise InputError(
            f"{prediction}: shape {pred.data.shape} differs from the truth {truth}: {gt.data.shape}"
        )
    if abs(pred.voxel_size - gt.voxel_size) > 1e-3 * gt.voxel_size:
        err_console.print(
            f"[yellow]warning:[/] {prediction} has voxel size {pred.voxel_size:.4g} Å, the "
            f"truth {gt.voxel_size:.4g} Å; resolutions are in the truth's",
            highlight=False,
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
