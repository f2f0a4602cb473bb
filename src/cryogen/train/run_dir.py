"""The run folder: its checks for a new, overwritten or resumed run, ``config.json``,
``losses.csv`` and ``losses.png``.

Layout: ``config.json`` (the resolved config), ``losses.csv`` (one row per ``log_every``
steps, columns :data:`~cryogen.train.losses.LOSS_COLUMNS`), ``losses.png`` (the shown
terms against the step), ``last.pt`` (the full checkpoint) and ``checkpoints/step_N.pt``
(generator snapshots).  Under ``torchrun`` only rank 0 writes here.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cryogen.errors import InputError, OutputError
from cryogen.figures import save_figure
from cryogen.io import atomic_output, write_text_atomic
from cryogen.model import LAST, SNAPSHOT_DIR, load_checkpoint
from cryogen.train.config import RESUMABLE_FIELDS, TrainConfig, saved_config_fill
from cryogen.train.losses import LOSS_COLUMNS, SHOWN_TERMS

__all__ = [
    "CONFIG_FILE",
    "LOSSES_CSV",
    "LOSSES_PNG",
    "LossLog",
    "open_run_dir",
    "plot_losses",
    "write_config",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LOSSES_CSV = "losses.csv"
LOSSES_PNG = "losses.png"


def open_run_dir(
    run_dir: Path, config: TrainConfig, *, resume: bool, overwrite: bool, is_main: bool = True
) -> dict[str, Any] | None:
    """Check ``run_dir`` for the run about to start; the checkpoint to resume from, if any.

    A new run needs a folder without a run in it (``overwrite``: the old run's files are
    deleted, by the main rank only); ``resume`` needs ``last.pt``, a full checkpoint whose
    settings equal ``config`` outside :data:`~cryogen.train.config.RESUMABLE_FIELDS`.

    Raises
    ------
    OutputError
        The folder holds a run (``advice="resume"``), or cannot be created.
    InputError
        Nothing to resume, or the settings differ from the run's.
    """
    if resume:
        return _resumable_checkpoint(run_dir, config)
    _prepare(run_dir, overwrite=overwrite, is_main=is_main)
    return None


def _prepare(run_dir: Path, *, overwrite: bool, is_main: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder")
    existing = [run_dir / LAST, run_dir / SNAPSHOT_DIR, run_dir / LOSSES_CSV]
    if any(p.exists() for p in existing):
        if not overwrite:
            raise OutputError(f"{run_dir}: already holds a training run", advice="resume")
        if is_main:  # under DDP the other ranks only check
            for p in existing + [run_dir / LOSSES_PNG, run_dir / CONFIG_FILE]:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    if not is_main:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{run_dir}: cannot create the run folder: {exc}") from None


def _resumable_checkpoint(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    last = run_dir / LAST
    if not last.is_file():
        raise InputError(f"{run_dir}: nothing to resume (no {LAST})")
    ckpt = load_checkpoint(last)
    if ckpt.get("kind") != "full":
        raise InputError(f"{last}: not a full checkpoint; cannot resume")
    old = {**saved_config_fill(ckpt["config"]), **ckpt["config"]}
    new = config.model_dump(mode="json")
    diff = [k for k in new if k not in RESUMABLE_FIELDS and old.get(k) != new[k]]
    if diff:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new[k]!r})" for k in diff[:6])
        raise InputError(
            f"{run_dir}: cannot resume with settings that differ from the run's: {shown}"
        )
    return ckpt


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """``config.json``: the resolved configuration."""
    write_text_atomic(run_dir / CONFIG_FILE, config.to_json() + "\n")


class LossLog:
    """``losses.csv``: started (or trimmed to the checkpoint) once, then appended to.

    Parameters
    ----------
    path
        The file.
    enabled
        False on the ranks that must not write (rows then go nowhere).
    """

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def start(self, *, resumed: bool, step: int) -> None:
        """A new file with the header; resumed: the rows up to ``step`` kept, so that the
        file equals an uninterrupted run's."""
        if not self.enabled:
            return
        p = self.path
        if not (resumed and p.is_file()):
            with p.open("w", newline="") as fh:
                csv.writer(fh).writerow(LOSS_COLUMNS)
            return
        with p.open(newline="") as fh:
            rows = list(csv.reader(fh))
        # a file with fewer columns (an older header) gets today's; its old rows then
        # leave the new columns empty
        cols = list(LOSS_COLUMNS)
        header = cols if rows[0] == cols[: len(rows[0])] else rows[0]
        keep = [header] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with atomic_output(p, overwrite=True) as tmp, tmp.open("w", newline="") as fh:
            csv.writer(fh).writerows(keep)

    @contextmanager
    def appending(self) -> Iterator[Any]:
        """A function ``write(row)`` that appends a row (a dict by column) and flushes."""
        target = self.path if self.enabled else Path(os.devnull)
        with target.open("a", newline="") as fh:
            writer = csv.writer(fh)

            def write(row: dict[str, Any]) -> None:
                writer.writerow([format_value(row.get(c, math.nan)) for c in LOSS_COLUMNS])
                fh.flush()

            yield write


def format_value(v: Any) -> str:
    """A cell of ``losses.csv``: integers as they are, floats to 9 digits, NaN empty."""
    if isinstance(v, int):
        return str(v)
    v = float(v)
    return "" if math.isnan(v) else f"{v:.9g}"


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """The shown terms of ``losses.csv`` against the step, as a PNG (never raises)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            return
        steps = np.array([float(r["step"]) for r in rows])
        fig = Figure(figsize=(8, 4.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for key, _ in SHOWN_TERMS:
            vals = np.array([float(r[key]) if r[key] else np.nan for r in rows])
            if np.isfinite(vals).any():
                ax.plot(steps, vals, label=key, lw=1)
        if ax.get_lines() and all(
            np.nanmin(np.asarray(ln.get_ydata(), float)) > 0 for ln in ax.get_lines()
        ):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (per-voxel mean)")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(fig, png_path)
    except Exception as exc:  # a figure must never lose a finished run
        logger.warning("could not draw the loss curves: %s", exc)
