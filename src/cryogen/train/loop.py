"""The training loop: the budget, the learning-rate schedule, signals, the progress bar,
the callback, ``losses.csv``, periodic checkpoints and divergence.  The losses of a step
are the method's (:mod:`cryogen.train.methods`); the loop runs them until the budget is
spent or somebody asks it to stop, and always ends with a checkpoint."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from cryogen import distributed
from cryogen.errors import InputError
from cryogen.model import Normalisation
from cryogen.train.config import TrainConfig
from cryogen.train.losses import RANK_MEANS, SHOWN_TERMS
from cryogen.train.optim import Diverged
from cryogen.train.run_dir import LOSSES_PNG, plot_losses, read_loss_rows
from cryogen.train.run_lock import unlock_run_dir
from cryogen.train.run_log import (
    close_run_log,
    describe_end,
    describe_start,
    losses_text,
    run_log,
)

if TYPE_CHECKING:
    from cryogen.train.trainer import Trainer

__all__ = ["ProgressBar", "StopRequest", "TrainResult", "budget_spent_message", "run_training"]

logger = logging.getLogger(__name__)

#: Steps that training on noisy half-sets measured needing at least: the benchmark's sphere
#: at SNR 0.2 scored 21.0 dB after 600 steps and 26.3 / 23.2 / 26.4 after 3000 on three
#: seeds (docs/benchmarks.md, "Noisy tomograms").  A shorter half-set run ends with a warning.
HALF_SET_STEPS = 3000

Callback = Callable[[dict[str, Any]], Any]


@dataclass
class TrainResult:
    """What :func:`~cryogen.train.train` returns.

    Attributes
    ----------
    run_dir : Path
    step : int
        Steps done in total (resumed runs included).
    elapsed_s : float
        Training wall time in total, seconds.
    losses : dict
        The last step's row of ``losses.csv`` (by column).
    checkpoint : Path
        The full checkpoint ``RUN_DIR/last.pt``.
    generator : torch.nn.Module
        The trained generator (on the training device, eval mode).
    config : TrainConfig
    normalisation : Normalisation
    interrupted : bool
        True when Ctrl-C, ``SIGTERM`` (or the callback) stopped the run before its budget.
    snapshots : list of Path
        The generator snapshots written by this call.
    stopped_by : str or None
        What stopped an interrupted run: ``"SIGINT"``, ``"SIGTERM"`` or ``"callback"``.
    """

    run_dir: Path
    step: int
    elapsed_s: float
    losses: dict[str, float]
    checkpoint: Path
    generator: nn.Module
    config: TrainConfig
    normalisation: Normalisation
    interrupted: bool = False
    snapshots: list[Path] = field(default_factory=list)
    stopped_by: str | None = None


def run_training(trainer: Trainer, progress: bool, callback: Callback | None) -> TrainResult:
    """Run ``trainer`` to its budget (or a stop request) and write the final checkpoint;
    ``run.log`` says how it went, and at the end the run folder is released."""
    t = trainer
    if t.step > 0 and t.done():
        raise InputError(f"{t.run_dir}: {budget_spent_message(t.cfg, t.step, t.elapsed)}")
    log = run_log(t.run_dir)
    log.write(*describe_start(t, resumed=t.step > 0))
    log.started = True
    session = time.perf_counter()
    t.networks.start_training()
    bar = ProgressBar(t.cfg, enabled=progress and t.dist.is_main)
    with StopRequest() as stop, t.log.appending() as write:
        bar.start(t.step, t.elapsed)
        try:
            last_row, interrupted = _steps(t, bar, write, stop, callback)
        finally:
            bar.stop()
    path = _save(t, last_row)
    if interrupted:
        logger.warning("stopped at step %d; checkpoint %s (resume to continue)", t.step, path)
    elif t.data.halves is not None and t.step < HALF_SET_STEPS and t.dist.is_main:
        logger.warning(
            "trained %d steps on half-sets: noisy data measured needing about %d to denoise "
            "well (docs/benchmarks.md); train with --steps %d or more",
            t.step,
            HALF_SET_STEPS,
            HALF_SET_STEPS,
        )
    if t.dist.is_main:
        plot_losses(t.log.path, t.run_dir / LOSSES_PNG)
    if not distributed.replicas_equal(t.networks.g, t.dist):
        logger.error("rank %d: the generator's replicas differ between ranks", t.dist.rank)
    stopped_by = (stop.signal or "callback") if interrupted else None
    header, rows, _ = read_loss_rows(t.log.path, t.step) if t.log.enabled else ([], [], 0)
    log.write(*describe_end(t, stopped_by, time.perf_counter() - session, (header, rows)))
    close_run_log(t.run_dir)
    unlock_run_dir(t.run_dir)
    t.networks.g.eval()
    return TrainResult(
        run_dir=t.run_dir,
        step=t.step,
        elapsed_s=t.elapsed,
        losses=last_row,
        checkpoint=path,
        generator=t.networks.g,
        config=t.cfg,
        normalisation=t.data.normalisation,
        interrupted=interrupted,
        snapshots=list(t.snapshots),
        stopped_by=stopped_by,
    )


def budget_spent_message(config: TrainConfig, step: int, elapsed: float) -> str:
    """Why a resumed run has nothing left to do, and how to train it longer."""
    done = f"{step} steps, {elapsed / 60:.1f} minutes of training"
    extend = []
    if config.steps is not None:
        extend.append(f"--steps above {step} (e.g. --steps {2 * step})")
    if config.minutes is not None:
        extend.append(f"--minutes above {elapsed / 60:.3g}")
    return (
        f"the run is finished: its budget is spent ({done}); to train it longer, resume "
        f"with a larger budget: {' and '.join(extend)}"
    )


def _save(t: Trainer, row: dict[str, Any]) -> Path:
    """``t.save()``, with a line in ``run.log`` (the step, its losses, the time it took)."""
    start = time.perf_counter()
    path = t.save()
    run_log(t.run_dir).write(
        f"step {t.step} ({t.elapsed / 60:.2f} min): {losses_text(row)}; checkpoint "
        f"written in {time.perf_counter() - start:.2f} s"
    )
    return path


def _steps(
    t: Trainer,
    bar: ProgressBar,
    write: Callable[[dict[str, Any]], None],
    stop: StopRequest,
    callback: Callback | None,
) -> tuple[dict[str, float], bool]:
    """The steps to the budget; the last row and whether a stop request ended them."""
    cfg = t.cfg
    row: dict[str, float] = {}
    t_prev = time.perf_counter()
    while not t.done():
        p = t.progress()
        lr = t.optimisers.set_lr(p)
        try:
            losses = t.training_step(p)
        except Diverged as exc:
            raise t.diverged(str(exc)) from None
        t.step += 1
        now = time.perf_counter()
        t.elapsed += now - t_prev
        t_prev = now
        stop_all, losses = _agree(t, stop.requested, losses)
        row = {"step": t.step, "elapsed_s": t.elapsed, "progress": p, "lr": lr, **losses}
        if t.step % cfg.log_every == 0 or t.done():
            write(row)
        bar.update(t.step, t.elapsed, row)
        if callback is not None:
            stop_all = _ask_callback(t, callback, p, row) or stop_all
        due = t.step % cfg.checkpoint_every == 0 or (
            cfg.checkpoint_minutes is not None
            and t.elapsed - t.last_save >= 60.0 * cfg.checkpoint_minutes
        )
        if due and not t.done():
            _save(t, row)
            t_prev = time.perf_counter()  # checkpoint writing is not training time
        # under DDP only the agreed flag counts (a signal after the sync: next step)
        if stop_all or (stop.requested and not t.dist.distributed):
            return row, True
    return row, False


def _agree(t: Trainer, stop: bool, row: dict[str, float]) -> tuple[bool, dict[str, float]]:
    """Under DDP, one all-reduce: rank 0's clock (the budget ends on the same step
    everywhere), anybody's stop request, and the step's values averaged over the ranks."""
    if not t.dist.distributed:
        return False, row
    values = {c: row.get(c, math.nan) for c in RANK_MEANS}
    t.elapsed, stop_all, mean = distributed.step_sync(t.elapsed, stop, values, t.dist)
    return stop_all, {**row, **{k: v for k, v in mean.items() if not math.isnan(v)}}


def _ask_callback(t: Trainer, callback: Callback, p: float, row: dict[str, float]) -> bool:
    """The callback's wish to stop, agreed on by every rank."""
    info = {
        "step": t.step,
        "elapsed_s": t.elapsed,
        "progress": p,
        "losses": row,
        "generator": t.networks.g,
        "normalisation": t.data.normalisation,
    }
    return distributed.any_flag(bool(callback(info)), t.dist)


class StopRequest:
    """Ctrl-C and ``SIGTERM`` (what Slurm, ``timeout``, ``docker stop`` and torchrun send)
    ask the run to stop after the current step, with a checkpoint; a second one stops at
    once.  Handlers are installed only in the main thread, and restored on exit.

    Attributes
    ----------
    requested : bool
    signal : str or None
        The signal that asked (``"SIGINT"``, ``"SIGTERM"``).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second one: stop at once
            raise KeyboardInterrupt
        self.requested = True
        self.signal = signal.Signals(signum).name
        logger.warning(
            "%s: writing a checkpoint after this step (send it again to abort without one)",
            self.signal,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()


class ProgressBar:
    """A rich progress bar over steps (or seconds, with a time budget) showing the
    :data:`~cryogen.train.losses.SHOWN_TERMS`."""

    def __init__(self, cfg: TrainConfig, enabled: bool) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.bar: Any = None
        self.last = 0.0
        self.by_steps = cfg.steps is not None

    def start(self, step: int, elapsed: float) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        total = self.cfg.steps if self.by_steps else int(60 * (self.cfg.minutes or 0))
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.bar.start()
        desc = f"train {self.cfg.method}" + ("" if self.by_steps else " (s)")
        done = step if self.by_steps else int(elapsed)
        self.task = self.bar.add_task(desc, total=total, info="", completed=done)

    def update(self, step: int, elapsed: float, row: dict[str, float]) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self.last < 0.25:
            return
        self.last = now
        shown = " ".join(f"{label} {row[k]:.3g}" for k, label in SHOWN_TERMS if k in row)
        done = step if self.by_steps else int(elapsed)
        self.bar.update(self.task, completed=done, info=f"step {step} {shown}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
