"""``cryogen train``: train a generator on wedge-corrupted tomograms.

Before training it says, per tomogram, which file it trains on (a deconvolved map where the
STAR file lists one), its shape and its tilt range with where that comes from; a range
recorded nowhere is the default, with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    TiltFiles,
    TiltMaxFromData,
    TiltMinFromData,
    check_beam_axis,
    minutes_option,
    output_option,
    parse_set_options,
    steps_option,
)
from cryogen.cli.pairs import halves_option, pairs
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.io.inputs import LoadedTomograms, TomogramSource
    from cryogen.train import TrainConfig, TrainResult

__all__ = ["train"]

console = Console()
err_console = Console(stderr=True)


# ------------------------------------------------------------------------------ options
Halves = Annotated[
    list[Path] | None,
    halves_option(
        "The two half-sets (even/odd frames or tilts) of a tomogram, repeatable, one pair "
        "per tomogram in order; without tomograms, each is the mean of its pair."
    ),
]
NoDeconv = Annotated[
    bool,
    typer.Option(
        "--no-deconv",
        help="Train on rlnTomoName even where the STAR file lists a CTF-deconvolved map "
        "(rlnDeconvTomoName, used by default).",
    ),
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
    list[Path] | None,
    typer.Argument(
        help="Tomograms (MRC, one or more) or one STAR file listing them (RELION-5 or "
        "IsoNet2 columns).",
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
    output: Output,
    tomograms: Tomograms = None,
    tilt_min: TiltMinFromData = None,
    tilt_max: TiltMaxFromData = None,
    tilt_files: TiltFiles = None,
    halves: Halves = None,
    no_deconv: NoDeconv = False,
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
    from cryogen.io.inputs import load_tomograms, shared_tilt_range, tomogram_sources
    from cryogen.train import TrainConfig
    from cryogen.train import train as run_training

    check_beam_axis(beam_axis)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    sources, _ = tomogram_sources(
        tomograms or [], masks=masks, tilt_files=tilt_files, halves=pairs(halves)
    )
    data = load_tomograms(
        sources, beam_axis=beam_axis, pixel_size=pixel_size, deconvolved=not no_deconv,
        tilt_min=tilt_min, tilt_max=tilt_max,
    )  # fmt: skip
    if distributed.is_main():
        _print_inputs(data, sources)
    extra = _library_inputs(data, _run_log_inputs(data, sources))
    # one range for all, unless the library takes one per tomogram
    t0, t1 = data.tilt_ranges[0] if "tilt_ranges" in extra else shared_tilt_range(data.tilts)
    file, exact = _config_file(config, parse_set_options(set_), output if resume else None)
    if file is not None and resume and config is None:
        _decide_machine_again(exact, device, threads)
    overrides: dict[str, Any] = {
        "tilt_min": t0, "tilt_max": t1, "method": method.value if method else None,
        "steps": steps, "minutes": minutes, "seed": seed, "device": device,
        "batch_size": batch_size, "crop_size": crop_size, "threads": threads,
    }  # fmt: skip
    cfg = TrainConfig.from_sources(preset.value if preset else None, file, overrides, exact=exact)
    if dry_run:
        if distributed.is_main():
            _print_dry_run(cfg)
        return
    if distributed.is_main():
        _print_threads(cfg)
    try:
        result = run_training(
            cfg, data.volumes, output, voxel_size=data.voxel_size, masks=data.masks,
            resume=resume, overwrite=overwrite, progress=not quiet, **extra,
        )  # fmt: skip
    except InputError as exc:
        raise named_volumes(exc, [s.where for s in sources]) from None
    if distributed.is_main():  # under torchrun: one summary, from rank 0
        _print_summary(cfg, result, output)
    if result.interrupted:
        raise typer.Exit(130)


def _decide_machine_again(exact: dict[str, Any], device: str | None, threads: int | None) -> None:
    """A resumed run's ``config.json`` records what that run resolved (its machine's device,
    precision and threads): decide them again for the machine it runs on now, unless given."""
    for key in ("device", "amp", "threads"):
        exact.setdefault(key, "auto" if key != "threads" else None)
    if device is not None:
        exact["device"] = device
    if threads is not None:
        exact["threads"] = threads


def _library_inputs(data: LoadedTomograms, described: list[str]) -> dict[str, Any]:
    """What the training takes beside the volumes: the half-sets, the tilt range of each
    tomogram where they differ (one model over all of them), the inputs for ``run.log``."""
    extra: dict[str, Any] = {"halves": data.halves, "inputs": described}
    if len(set(data.tilt_ranges)) > 1:
        extra["tilt_ranges"] = data.tilt_ranges
    return extra


def _run_log_inputs(data: LoadedTomograms, sources: Sequence[TomogramSource]) -> list[str]:
    """One line per tomogram for the run's ``run.log``: its file, shape, tilt range, mask."""
    lines = []
    for i, (label, vol, tilt) in enumerate(zip(data.files, data.volumes, data.tilts, strict=True)):
        mask = sources[i].mask if i < len(sources) else None
        lines.append(f"{label}  {tuple(vol.shape)}  tilt {tilt}  mask {mask or 'none'}")
    return lines


def _print_threads(config: TrainConfig) -> None:
    """The CPU threads of a CPU run, and a warning when the machine is busy."""
    from cryogen.device import busy_machine, default_threads, pick_device

    if pick_device(config.device).type != "cpu":
        return
    threads = config.threads or default_threads()
    console.print(f"training on {threads} CPU thread{'s' if threads > 1 else ''}", highlight=False)
    busy = busy_machine(threads)
    if busy:
        err_console.print(f"[bold yellow]warning:[/] {busy} (--threads)", highlight=False)


def named_volumes(exc: InputError, names: Sequence[str]) -> InputError:
    """``exc`` with the library's ``volume N`` (0-based) replaced by the file it is."""

    def name(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return names[i] if i < len(names) else m.group(0)

    return InputError(re.sub(r"\bvolume (\d+)\b", name, str(exc)), advice=exc.advice)


def _print_inputs(data: LoadedTomograms, sources: Sequence[TomogramSource]) -> None:
    """One line per tomogram: the file trained on, its shape and its tilt range with where
    it comes from; a warning where the range is the default."""
    for i, (label, vol, tilt) in enumerate(zip(data.files, data.volumes, data.tilts, strict=True)):
        halves = "  with half-sets" if data.halves is not None else ""
        console.print(
            f"tomogram {i + 1}: {label}  {tuple(vol.shape)}  tilt {tilt}{halves}",
            highlight=False,
            soft_wrap=True,
        )
    defaulted = [s.where for s, t in zip(sources, data.tilts, strict=True) if t.default]
    if defaulted:
        err_console.print(
            f"[bold yellow]warning:[/] no tilt range recorded for {', '.join(defaulted)}; "
            "using the default -60/+60 degrees. A wrong range trains a wrong wedge: give "
            "--tilt-min/--tilt-max, --tlt, or put NAME.tlt beside the tomogram.",
            highlight=False,
            soft_wrap=True,
        )


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
