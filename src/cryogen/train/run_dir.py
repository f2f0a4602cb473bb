"""The run folder: its lock, its checks for a new, overwritten or resumed run,
``config.json``, ``losses.csv`` (repaired on resume) and ``losses.png``.

Layout: ``config.json`` (the resolved config: device and precision as this machine
resolved them), ``losses.csv`` (one row per ``log_every`` steps, columns
:data:`~cryogen.train.losses.LOSS_COLUMNS`), ``losses.png`` (each shown term against the
step, raw and smoothed), ``run.log`` (:mod:`cryogen.train.run_log`), ``last.pt`` (the full
checkpoint) and ``checkpoints/step_N.pt`` (generator snapshots).  One training at a time
holds the folder (:mod:`cryogen.train.run_lock`); under ``torchrun`` only rank 0 writes
here.  The checkpoint is the truth of a run: on resume, ``losses.csv`` is cut back to its
step, and a damaged log (empty, truncated, garbled) is repaired with a warning.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.errors import InputError, OutputError
from cryogen.io import write_text_atomic
from cryogen.io.files import write_error
from cryogen.model import LAST, SNAPSHOT_DIR, load_checkpoint
from cryogen.model.checkpoint import check_finite_weights
from cryogen.train.config import RESUMABLE_FIELDS, TrainConfig, saved_config_fill
from cryogen.train.losses import LOSS_COLUMNS, SHOWN_TERMS
from cryogen.train.run_lock import lock_run_dir, unlock_run_dir
from cryogen.train.run_log import RUN_LOG, amp_name, close_run_log, open_run_log

__all__ = [
    "CONFIG_FILE",
    "LOSSES_CSV",
    "LOSSES_PNG",
    "RUN_FILES",
    "LossLog",
    "guard_run_dir",
    "open_run_dir",
    "plot_losses",
    "write_config",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LOSSES_CSV = "losses.csv"
LOSSES_PNG = "losses.png"
#: The files of a run besides its checkpoints (removed when it fails before the first one).
RUN_FILES = (CONFIG_FILE, LOSSES_CSV, LOSSES_PNG, RUN_LOG)


def open_run_dir(
    run_dir: Path, config: TrainConfig, *, resume: bool, overwrite: bool, is_main: bool = True
) -> dict[str, Any] | None:
    """Lock ``run_dir`` and check it for the run about to start; the checkpoint to resume
    from, if any.

    The main rank locks the folder first (a second training of it is refused,
    :func:`cryogen.train.run_lock.lock_run_dir`) and opens its ``run.log``.  A new run
    needs a folder without a run in it (``overwrite``: the old run's files are deleted, by
    the main rank only); ``resume`` needs ``last.pt``, a full checkpoint with finite
    weights, whose settings equal ``config`` outside
    :data:`~cryogen.train.config.RESUMABLE_FIELDS` and whose budget is not spent.

    Raises
    ------
    OutputError
        The folder holds a run (``advice="resume"``), another training holds it, or it
        cannot be created.
    InputError
        Nothing to resume, the settings differ from the run's, or its weights are not
        finite.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder")
    if resume and not run_dir.is_dir():
        raise InputError(f"{run_dir}: nothing to resume (no such folder)")
    if is_main:
        lock_run_dir(run_dir)
    ckpt = None
    if resume:
        if not (run_dir / LAST).is_file():
            raise InputError(f"{run_dir}: nothing to resume (no {LAST})")
        ckpt = _resumable_checkpoint(run_dir, config)
    else:
        _prepare(run_dir, overwrite=overwrite, is_main=is_main)
    if is_main:  # accepted: from now on the run's warnings go to its run.log
        open_run_log(run_dir)
    return ckpt


@contextmanager
def guard_run_dir(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Around a training of ``run_dir``: at the end, close its ``run.log`` and release its
    lock; after a failure (any exception, ``SystemExit`` and ``KeyboardInterrupt``
    included) say so in ``run.log``, and if no checkpoint was written remove the run's
    files (and the folder if the run created it), so that nothing stands in the way of
    running the command again."""
    run = Path(run_dir)
    try:
        yield
    except BaseException as exc:
        close_run_log(run, exc)
        unlock_run_dir(run, failed=True, remove=RUN_FILES)
        raise
    close_run_log(run)
    unlock_run_dir(run)


def _prepare(run_dir: Path, *, overwrite: bool, is_main: bool) -> None:
    existing = [run_dir / LAST, run_dir / SNAPSHOT_DIR, run_dir / LOSSES_CSV]
    if any(p.exists() for p in existing):
        if not overwrite:
            raise OutputError(f"{run_dir}: already holds a training run", advice="resume")
        if is_main:  # under DDP the other ranks only check
            for p in existing + [run_dir / LOSSES_PNG, run_dir / CONFIG_FILE, run_dir / RUN_LOG]:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()


def _resumable_checkpoint(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    last = run_dir / LAST
    ckpt = load_checkpoint(last)
    if ckpt.get("kind") != "full":
        raise InputError(f"{last}: not a full checkpoint; cannot resume")
    for part in ("generator", "energy"):
        if isinstance(ckpt.get(part), dict):
            check_finite_weights(last, ckpt[part], f"{part} weights")
    old = {**saved_config_fill(ckpt["config"]), **ckpt["config"]}
    new = config.model_dump(mode="json")
    diff = [k for k in new if k not in RESUMABLE_FIELDS and old.get(k) != new[k]]
    if diff:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new[k]!r})" for k in diff[:6])
        raise InputError(
            f"{run_dir}: cannot resume with settings that differ from the run's: {shown}"
        )
    return ckpt


def write_config(
    run_dir: Path,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    amp: torch.dtype | None | str = "unresolved",
) -> None:
    """``config.json``: the configuration, with ``device`` and ``amp`` as this machine
    resolved them when given (``"auto"`` becomes ``"cpu"``, ``"off"``, ``"bf16"``...)."""
    values = config.model_dump(mode="json")
    if device is not None:
        values["device"] = str(device)
    if not isinstance(amp, str):
        values["amp"] = amp_name(amp)
    resolved = TrainConfig.validated(values)
    write_text_atomic(run_dir / CONFIG_FILE, resolved.to_json() + "\n")


class LossLog:
    """``losses.csv``: started (or cut back to the checkpoint) once, then appended to.

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
        file equals an uninterrupted run's.  A damaged file (empty, truncated, garbled
        rows) keeps its readable rows up to ``step``, with a warning."""
        if not self.enabled:
            return
        p = self.path
        if not (resumed and p.is_file()):
            write_text_atomic(p, _csv_text([list(LOSS_COLUMNS)]))
            return
        header, keep, problems = read_loss_rows(p, step)
        if problems:
            logger.warning(
                "%s was damaged (empty, truncated or garbled): rewritten with its %d readable "
                "row(s) up to step %d, the checkpoint's, from which training goes on",
                p,
                len(keep),
                step,
            )
        write_text_atomic(p, _csv_text([header, *keep]))

    @contextmanager
    def appending(self) -> Iterator[Any]:
        """A function ``write(row)`` that appends a row (a dict by column) and flushes; a
        failed write (a full disk) is an ``OutputError`` naming the file."""
        target = self.path if self.enabled else Path(os.devnull)
        with target.open("a", newline="") as fh:
            writer = csv.writer(fh)

            def write(row: dict[str, Any]) -> None:
                try:
                    writer.writerow([format_value(row.get(c, math.nan)) for c in LOSS_COLUMNS])
                    fh.flush()
                except OSError as exc:
                    raise write_error(target, exc) from None

            yield write


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def _readable(row: list[str], width: int) -> bool:
    """A data row: ``width`` cells (a torn row has fewer), an integer step, then numbers or
    blanks."""
    if len(row) != width or not row[0].strip().isdigit():
        return False
    try:
        for cell in row[1:]:
            if cell.strip():
                float(cell)
    except ValueError:
        return False
    return True


def read_loss_rows(path: Path, step: int) -> tuple[list[str], list[list[str]], int]:
    """``losses.csv``'s header, its readable rows up to ``step`` (increasing steps), and
    how many problems it had (unreadable rows, a missing header).  A file with fewer
    columns (an older header) gets today's header; its old rows then leave the new columns
    empty."""
    cols = list(LOSS_COLUMNS)
    try:
        text = path.read_text(errors="replace").replace("\0", "")
    except OSError:
        text = ""
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    header, width, problems = cols, len(cols), 0
    if rows and rows[0][0] == "step":
        first = rows.pop(0)
        width = len(first)
        if first != cols[:width]:
            header = first
    else:
        problems += 1  # empty, or the header lost
    keep: list[list[str]] = []
    for r in rows:
        if not _readable(r, width) or (keep and int(r[0]) <= int(keep[-1][0])):
            problems += 1
        elif int(r[0]) <= step:
            keep.append(r)
    return header, keep, problems


def format_value(v: Any) -> str:
    """A cell of ``losses.csv``: integers as they are, floats to 9 digits, NaN empty."""
    if isinstance(v, int):
        return str(v)
    v = float(v)
    return "" if math.isnan(v) else f"{v:.9g}"


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """Each shown term of ``losses.csv`` against the step in a panel of its own, raw and
    smoothed (:func:`cryogen.figures.loss_curve_figure`), as a PNG (never raises)."""
    try:
        from cryogen.figures import loss_curve_figure

        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            return
        steps = [int(float(r["step"])) for r in rows]
        columns: dict[str, Sequence[float]] = {}
        for key, label in SHOWN_TERMS:
            vals = [_number(r.get(key)) for r in rows]
            # a term equal to one shown already (the loss of a one-term objective) adds no panel
            if np.isfinite(vals).any() and not any(np.array_equal(vals, v, equal_nan=True)
                                                   for v in columns.values()):  # fmt: skip
                columns[label] = vals
        if columns:
            loss_curve_figure(columns, steps, png_path, title=f"{csv_path.parent.name}: losses")
    except Exception as exc:  # a figure must never lose a finished run
        logger.warning("could not draw the loss curves: %s", exc)


def _number(cell: str | None) -> float:
    try:
        return float(cell) if cell else math.nan
    except ValueError:
        return math.nan
