"""The ``cryogen train`` command (registered by ``cryogen.cli``; ``predict`` lives in
``cryogen.cli_predict``).

It is thin: it reads files, calls :func:`cryogen.train.train`, and writes files.  User
errors are raised as ``CryogenError`` subclasses, which ``cryogen.cli`` prints as one line.
"""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cryogen.errors import InputError

__all__ = ["register", "parse_set_options"]

logger = logging.getLogger(__name__)
console = Console()


class Method(str, Enum):
    cryogen = "cryogen"
    isonet = "isonet"


class Preset(str, Enum):
    cpu = "cpu"
    paper = "paper"


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``["adv_weight=0.01", "features=[8,16]"]`` -> dict; values parsed as JSON when they
    can be, else kept as strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        key, _, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def _read_inputs(
    tomograms: list[Path],
    masks: list[Path] | None,
    beam_axis: str,
    pixel_size: float | None,
    tilt_min: float | None,
    tilt_max: float | None,
) -> tuple[list[Any], list[Any] | None, float, float | None, float | None]:
    """Volumes, masks, voxel size and the tilt range the inputs imply (STAR files)."""
    from cryogen.io import read_volume, tomogram_sources

    sources, star = tomogram_sources(tomograms, masks=masks)
    paths = [s.path for s in sources]
    mask_paths = [s.mask for s in sources]
    pix = [s.pixel_size for s in sources]
    star_tilts: tuple[float, float] | None = None
    if star is not None:
        known = {
            (s.tilt_min, s.tilt_max)
            for s in sources
            if s.tilt_min is not None and s.tilt_max is not None
        }
        if len(known) > 1 and (tilt_min is None or tilt_max is None):
            raise InputError(
                f"{star}: the tomograms have different tilt ranges {sorted(known)}; "
                "one model is trained per tilt range (split the STAR file)"
            )
        if len(known) == 1:
            star_tilts = next(iter(known))
    vols = []
    for p, px in zip(paths, pix, strict=True):
        vols.append(
            read_volume(
                p, beam_axis=beam_axis, pixel_size=pixel_size if pixel_size is not None else px
            )
        )
    voxel = float(vols[0].voxel_size)
    for v, p in zip(vols[1:], paths[1:], strict=True):
        if abs(float(v.voxel_size) - voxel) > 1e-3 * voxel:
            logger.warning(
                "%s: voxel size %.4g Å differs from the first tomogram's %.4g Å",
                p,
                float(v.voxel_size),
                voxel,
            )
    mask_data = None
    if any(m is not None for m in mask_paths):
        mask_data = [
            None
            if m is None
            else read_volume(m, beam_axis=beam_axis, pixel_size=voxel, check_values=False).load()
            for m in mask_paths
        ]
    t0 = tilt_min if tilt_min is not None else (star_tilts[0] if star_tilts else None)
    t1 = tilt_max if tilt_max is not None else (star_tilts[1] if star_tilts else None)
    return [v.load() for v in vols], mask_data, voxel, t0, t1


def _print_dry_run(config: Any) -> None:
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


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    from cryogen.cli.app import user_errors

    @app.command("train")
    @user_errors
    def train_cmd(
        tomograms: Annotated[
            list[Path],
            typer.Argument(
                help="Tomograms (MRC, one or more) or one STAR file listing them.",
                show_default=False,
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Run folder (created): config, checkpoints, losses.csv, losses.png.",
                show_default=False,
            ),
        ],
        tilt_min: Annotated[
            float | None,
            typer.Option(
                "--tilt-min",
                help="Lowest tilt angle, degrees (default: the STAR file's, else -60).",
                show_default=False,
            ),
        ] = None,
        tilt_max: Annotated[
            float | None,
            typer.Option(
                "--tilt-max",
                help="Highest tilt angle, degrees (default: the STAR file's, else 60).",
                show_default=False,
            ),
        ] = None,
        method: Annotated[
            Method | None,
            typer.Option(
                "--method",
                help="cryogen (Algorithm 1) or isonet (IsoNet-style baseline); default: the "
                "preset's (cpu: isonet, measured better in 15 CPU minutes; paper: cryogen).",
                show_default=False,
            ),
        ] = None,
        preset: Annotated[
            Preset | None,
            typer.Option(
                "--preset",
                help="Default settings: cpu (small networks, minutes on a CPU) or "
                "paper (the paper's networks, for GPUs) (default: cpu, or the config file's).",
                show_default=False,
            ),
        ] = None,
        steps: Annotated[
            int | None,
            typer.Option(
                "--steps",
                min=1,
                help="Training budget in steps (default: the preset's: cpu "
                "15 minutes, paper 20000 steps).",
                show_default=False,
            ),
        ] = None,
        minutes: Annotated[
            float | None,
            typer.Option(
                "--minutes",
                min=0.01,
                help="Training budget in minutes of wall-clock time (default: the preset's).",
                show_default=False,
            ),
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option("--seed", min=0, help="Random seed (default: 0).", show_default=False),
        ] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="Continue the run in the output folder from its last checkpoint "
                "(its config.json is the config file unless --config is given).",
            ),
        ] = False,
        device: Annotated[
            str | None,
            typer.Option(
                "--device",
                help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps (default: auto).",
                show_default=False,
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                help="Config file (JSON, TOML or YAML) with any TrainConfig fields; "
                "flags override it, it overrides the preset.",
                show_default=False,
            ),
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="Override any config field, KEY=VALUE (JSON value), repeatable, "
                "e.g. --set adv_weight=0.01 --set features=[8,16,32].",
                show_default=False,
            ),
        ] = None,
        batch_size: Annotated[
            int | None,
            typer.Option(
                "--batch-size", min=1, help="Crops per step (default: 1).", show_default=False
            ),
        ] = None,
        crop_size: Annotated[
            int | None,
            typer.Option(
                "--crop-size",
                min=8,
                help="Training crop edge, voxels (default: 64).",
                show_default=False,
            ),
        ] = None,
        threads: Annotated[
            int | None,
            typer.Option(
                "--threads",
                min=1,
                help="CPU threads (default: cpu preset 1, paper: torch's default).",
                show_default=False,
            ),
        ] = None,
        masks: Annotated[
            list[Path] | None,
            typer.Option(
                "--mask",
                help="Mask volume (MRC) per tomogram, in order, repeatable: "
                "subtomograms are cut where it covers >= mask_threshold (default 40%).",
                show_default=False,
            ),
        ] = None,
        beam_axis: Annotated[
            str,
            typer.Option("--beam-axis", help="Axis of the input volumes along the beam: z or y."),
        ] = "z",
        pixel_size: Annotated[
            float | None,
            typer.Option(
                "--pixel-size",
                help="Voxel size in Å instead of the MRC header's.",
                show_default=False,
            ),
        ] = None,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print the networks' parameter counts and the resolved config, "
                "then exit without training.",
            ),
        ] = False,
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Start again in an output folder that holds a run."),
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    ) -> None:
        """Train a generator on wedge-corrupted tomograms (CryoGEN, or the IsoNet baseline)."""
        from cryogen.train import TrainConfig, train

        if beam_axis not in ("z", "y"):
            raise InputError(f"--beam-axis must be 'z' or 'y', got {beam_axis!r}")
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other")
        vols, mask_data, voxel, t0, t1 = _read_inputs(
            tomograms, masks, beam_axis, pixel_size, tilt_min, tilt_max
        )
        file = config
        exact = parse_set_options(set_)
        if resume and file is None and (output / "config.json").is_file():
            from cryogen.train.config import load_config_file, saved_config_fill

            file = output / "config.json"
            # a run saved before a field existed resumes with the value it ran with
            exact = {**saved_config_fill(load_config_file(file)), **exact}
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
        cfg = TrainConfig.from_sources(
            preset.value if preset else None, file, overrides, exact=exact
        )
        from cryogen import distributed

        if dry_run:
            if distributed.is_main():
                _print_dry_run(cfg)
            return
        result = train(
            cfg,
            vols,
            output,
            voxel_size=voxel,
            masks=mask_data,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
        )
        last = {
            k: v
            for k, v in result.losses.items()
            if k in ("loss", "data", "consistency", "adv_g", "d_loss")
        }
        terms = "  ".join(f"{k} {v:.4g}" for k, v in last.items())
        if distributed.is_main():  # under torchrun: one summary, from rank 0
            console.print(
                f"{cfg.method}: {result.step} steps in {result.elapsed_s / 60:.1f} min  {terms}"
            )
            console.print(f"wrote {result.checkpoint} and {output / 'losses.csv'}")
            if result.interrupted:
                console.print("interrupted: continue with --resume")
        if result.interrupted:
            raise typer.Exit(130)
