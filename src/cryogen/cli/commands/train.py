"""``cryogen train``: train a generator on wedge-corrupted tomograms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cryogen.cli.options import (
    BeamAxis,
    MethodOption,
    PixelSize,
    PresetOption,
    Quiet,
    SetValues,
    Threads,
    check_beam_axis,
    minutes_option,
    output_option,
    parse_set_options,
    steps_option,
    tilt_max_option,
    tilt_min_option,
)
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.train import TrainConfig, TrainResult

__all__ = ["train"]

console = Console()


# ------------------------------------------------------------------------------ options
TiltMin = Annotated[
    float | None,
    tilt_min_option("Lowest tilt angle, degrees (default: the STAR file's, else -60)."),
]
TiltMax = Annotated[
    float | None,
    tilt_max_option("Highest tilt angle, degrees (default: the STAR file's, else 60)."),
]
Steps = Annotated[
    int | None,
    steps_option(
        "Training budget in steps (default: the preset's: cpu 15 minutes, paper 20000 steps)."
    ),
]
Minutes = Annotated[
    float | None,
    minutes_option("Training budget in minutes of wall-clock time (default: the preset's)."),
]
Tomograms = Annotated[
    list[Path],
    typer.Argument(
        help="Tomograms (MRC, one or more) or one STAR file listing them.",
        show_default=False,
    ),
]
Output = Annotated[
    Path,
    output_option("Run folder (created): config, checkpoints, losses.csv, losses.png."),
]
ConfigSeed = Annotated[
    int | None,
    typer.Option("--seed", min=0, help="Random seed (default: 0).", show_default=False),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the run in the output folder from its last checkpoint "
        "(its config.json is the config file unless --config is given).",
    ),
]
ConfigDevice = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps (default: auto).",
        show_default=False,
    ),
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (JSON, TOML or YAML) with any TrainConfig fields; "
        "flags override it, it overrides the preset.",
        show_default=False,
    ),
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, help="Crops per step (default: 1).", show_default=False),
]
CropSize = Annotated[
    int | None,
    typer.Option(
        "--crop-size",
        min=8,
        help="Training crop edge, voxels (default: 64).",
        show_default=False,
    ),
]
Masks = Annotated[
    list[Path] | None,
    typer.Option(
        "--mask",
        help="Mask volume (MRC) per tomogram, in order, repeatable: "
        "subtomograms are cut where it covers >= mask_threshold (default 40%).",
        show_default=False,
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the networks' parameter counts and the resolved config, "
        "then exit without training.",
    ),
]
RunOverwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Start again in an output folder that holds a run."),
]


# ------------------------------------------------------------------------------ command
def train(
    tomograms: Tomograms,
    output: Output,
    tilt_min: TiltMin = None,
    tilt_max: TiltMax = None,
    method: MethodOption = None,
    preset: PresetOption = None,
    steps: Steps = None,
    minutes: Minutes = None,
    seed: ConfigSeed = None,
    resume: Resume = False,
    device: ConfigDevice = None,
    config: Config = None,
    set_: SetValues = None,
    batch_size: BatchSize = None,
    crop_size: CropSize = None,
    threads: Threads = None,
    masks: Masks = None,
    beam_axis: BeamAxis = "z",
    pixel_size: PixelSize = None,
    dry_run: DryRun = False,
    overwrite: RunOverwrite = False,
    quiet: Quiet = False,
) -> None:
    """Train a generator on wedge-corrupted tomograms (CryoGEN, or the IsoNet baseline)."""
    from cryogen import distributed
    from cryogen.io import tomogram_sources
    from cryogen.io.inputs import load_tomograms, shared_tilt_range
    from cryogen.train import TrainConfig
    from cryogen.train import train as run_training

    check_beam_axis(beam_axis)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    sources, star = tomogram_sources(tomograms, masks=masks)
    t0, t1 = shared_tilt_range(sources, star, tilt_min=tilt_min, tilt_max=tilt_max)
    data = load_tomograms(sources, beam_axis=beam_axis, pixel_size=pixel_size)
    file, exact = _config_file(config, parse_set_options(set_), output if resume else None)
    overrides: dict[str, Any] = {
        "tilt_min": t0,
        "tilt_max": t1,
        "method": method.value if method else None,
        "steps": steps,
        "minutes": minutes,
        "seed": seed,
        "device": device,
        "batch_size": batch_size,
        "crop_size": crop_size,
        "threads": threads,
    }
    cfg = TrainConfig.from_sources(preset.value if preset else None, file, overrides, exact=exact)
    if dry_run:
        if distributed.is_main():
            _print_dry_run(cfg)
        return
    result = run_training(
        cfg,
        data.volumes,
        output,
        voxel_size=data.voxel_size,
        masks=data.masks,
        resume=resume,
        overwrite=overwrite,
        progress=not quiet,
    )
    if distributed.is_main():  # under torchrun: one summary, from rank 0
        _print_summary(cfg, result, output)
    if result.interrupted:
        raise typer.Exit(130)


def _config_file(
    config: Path | None, exact: dict[str, Any], resumed: Path | None
) -> tuple[Path | None, dict[str, Any]]:
    """The config file and the exact values of a run: a resumed run without ``--config``
    reads its folder's config.json, and fields it was saved without keep the values it ran
    with."""
    if resumed is None or config is not None or not (resumed / "config.json").is_file():
        return config, exact
    from cryogen.train import load_config_file, saved_config_fill

    file = resumed / "config.json"
    return file, {**saved_config_fill(load_config_file(file)), **exact}


def _print_dry_run(config: TrainConfig) -> None:
    from cryogen.model import build_energy, build_generator
    from cryogen.nets import count_parameters

    g = build_generator(config)
    label = "CryoGEN (Algorithm 1)" if config.method == "cryogen" else "IsoNet-style"
    table = Table(title=f"networks: {label}, preset {config.preset}")
    table.add_column("network")
    table.add_column("parameters", justify="right")
    kind = "U-Net++" if config.arch == "unetpp" else "U-Net"
    table.add_row(f"generator g ({kind})", f"{count_parameters(g):,}")
    if config.method == "cryogen":
        on = config.adv_weight > 0
        e_count = f"{count_parameters(build_energy(config)):,}" if on else "off (adv_weight 0)"
        table.add_row("energy model E", e_count)
    console.print(table)
    console.print_json(config.to_json())


def _print_summary(config: TrainConfig, result: TrainResult, output: Path) -> None:
    from cryogen.train import SHOWN_TERMS

    shown = {name for name, _ in SHOWN_TERMS}
    terms = "  ".join(f"{k} {v:.4g}" for k, v in result.losses.items() if k in shown)
    console.print(
        f"{config.method}: {result.step} steps in {result.elapsed_s / 60:.1f} min  {terms}"
    )
    console.print(f"wrote {result.checkpoint} and {output / 'losses.csv'}")
    if result.interrupted:
        console.print("interrupted: continue with --resume")
