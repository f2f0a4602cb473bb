"""The object a training run is: :class:`Trainer` assembles the data, networks,
optimisers, random streams and method of a run (fresh or resumed), takes one step at a
time, and checkpoints; :func:`train` builds one and runs its loop
(:mod:`cryogen.train.loop`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen import distributed
from cryogen.device import pick_device, resolve_amp, setup_threads
from cryogen.errors import CryogenError
from cryogen.model import LAST, Normalisation, save_checkpoint, snapshot_path
from cryogen.train.config import TrainConfig
from cryogen.train.data import SubtomoDataset
from cryogen.train.loop import TrainResult, run_training
from cryogen.train.methods import METHODS, Batch, RunParts, Wedges, draw_batch
from cryogen.train.networks import Networks
from cryogen.train.optim import Optimisers
from cryogen.train.refill import Refill
from cryogen.train.run_dir import LOSSES_CSV, LossLog, guard_run_dir, open_run_dir, write_config
from cryogen.train.state import (
    RunSeeds,
    checkpoint_meta,
    full_checkpoint,
    rank_random_state,
    restore_checkpoint,
    run_seeds,
    seed_globals,
)

__all__ = ["Trainer", "train"]

ArrayLike = np.ndarray | torch.Tensor


class Trainer:
    """A training run ready to go, fresh or resumed from its ``last.pt``.

    Built with the arguments of :func:`train` (plus ``dist``, this rank's place in a
    ``torchrun`` job); :meth:`run` trains to the budget.  Its parts are public for tests
    and studies that need one step or one piece: ``data`` (:class:`SubtomoDataset`),
    ``networks``, ``optimisers``, ``streams`` (the named random streams), ``refill``,
    ``wedges`` and ``method`` (the step of ``config.method``).

    Attributes
    ----------
    step : int
        Steps done.
    elapsed : float
        Training time so far, seconds.
    """

    def __init__(
        self,
        config: TrainConfig,
        volumes: Sequence[ArrayLike],
        run_dir: str | Path,
        *,
        voxel_size: float = 1.0,
        masks: Sequence[ArrayLike | None] | None = None,
        resume: bool = False,
        overwrite: bool = False,
        dist: distributed.DistContext | None = None,
        halves: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
        tilt_ranges: Sequence[tuple[float, float]] | None = None,
        inputs: Sequence[str] = (),
    ) -> None:
        self.cfg = cfg = config
        self.run_dir = Path(run_dir)
        self.inputs = [str(s) for s in inputs]  # the files trained on, for run.log
        self.voxel_size = float(voxel_size)
        # torchrun: this rank's place in the job (rank 0 of 1 otherwise) and its device
        self.dist = dist or distributed.DistContext(device=pick_device(cfg.device))
        self.device = self.dist.device
        setup_threads(cfg.threads)
        self.amp = resolve_amp(cfg.amp, self.device)
        ckpt = open_run_dir(
            self.run_dir, cfg, resume=resume, overwrite=overwrite, is_main=self.dist.is_main
        )
        seed_globals(cfg.seed)  # model initialisation, dropout
        seeds = run_seeds(cfg.seed, self.dist.rank)
        self.data = self._dataset(volumes, masks, ckpt, seeds, halves, tilt_ranges)
        self.streams = seeds.streams
        method = METHODS[cfg.method]
        self.networks = Networks(cfg, self.device, self.amp, with_energy=method.uses_energy(cfg))
        self.optimisers = Optimisers(cfg, self.networks)
        self.wedges = Wedges.for_run(cfg, self.data, self.device)
        self.refill = Refill(cfg, self.data, self.networks, self.wedges)
        self.method = method(
            RunParts(
                cfg,
                self.data,
                self.networks,
                self.optimisers,
                self.streams,
                self.refill,
                self.wedges,
            )
        )
        self.step = 0
        self.elapsed = 0.0
        self.last_save = 0.0
        self.snapshots: list[Path] = []
        if ckpt is not None:
            restore_checkpoint(self, ckpt)
        self.networks.wrap_ddp(self.dist)
        # a fresh run re-seeds the global torch RNG so that training does not depend on
        # how many random numbers the model constructors used
        if ckpt is None:
            torch.manual_seed(distributed.rank_seed(cfg.seed + 2, self.dist.rank))
        self.log = LossLog(self.run_dir / LOSSES_CSV, enabled=self.dist.is_main)
        distributed.barrier(self.dist, "the run folder checks")  # before rank 0 writes there
        if self.dist.is_main:  # only rank 0 writes files
            self.log.start(resumed=ckpt is not None, step=self.step)
            write_config(self.run_dir, cfg, device=self.device, amp=self.amp)

    def _dataset(
        self,
        volumes: Sequence[ArrayLike],
        masks: Sequence[ArrayLike | None] | None,
        ckpt: dict[str, Any] | None,
        seeds: RunSeeds,
        halves: Sequence[tuple[ArrayLike, ArrayLike]] | None,
        tilt_ranges: Sequence[tuple[float, float]] | None,
    ) -> SubtomoDataset:
        cfg = self.cfg
        norm = Normalisation.from_dict(ckpt["normalisation"]) if ckpt else None
        if norm is None and not cfg.normalise:
            norm = Normalisation(0.0, 1.0)
        data = SubtomoDataset(
            volumes,
            subtomo_size=cfg.subtomo_size,
            n_subtomos=cfg.n_subtomos,
            crop_size=cfg.crop_size,
            masks=masks,
            mask_threshold=cfg.mask_threshold,
            normalisation=norm,
            seed=seeds.data,
            device=self.device,
            halves=halves,
            tilt_ranges=tilt_ranges,
        )
        if seeds.crops is not None:  # rank r > 0: its own crops of the same subtomograms
            data.reseed(seeds.crops)
        return data

    # ------------------------------------------------------------------ budget
    def progress(self) -> float:
        """Fraction of the budget done, in ``[0, 1]``."""
        return self.cfg.progress_at(self.step, self.elapsed)

    def done(self) -> bool:
        """True once the budget is spent."""
        return self.cfg.budget_spent(self.step, self.elapsed)

    # ------------------------------------------------------------------ one step
    def next_batch(self, progress: float) -> tuple[Batch, dict[str, float]]:
        """The method's work due before step ``step + 1`` (refills), then its batch; the
        values that work logs."""
        row = self.method.before_batch(self.step, progress)
        batch = draw_batch(self.data, self.streams, self.step, self.cfg.batch_size, self.wedges)
        return batch, row

    def training_step(self, progress: float) -> dict[str, float]:
        """Step ``step + 1`` at ``progress``: the method's work before the batch, a batch,
        its losses, and ``g``'s update; returns the step's logged values.

        Raises
        ------
        cryogen.train.optim.Diverged
            A non-finite loss, or gradients non-finite too many steps in a row.
        """
        opt = self.optimisers
        opt.grad_norm = math.nan  # stays NaN where the update is skipped
        batch, row = self.next_batch(progress)
        out = self.method.losses(batch, progress)
        if out.loss.requires_grad:
            opt.check_finite(out.loss)
            opt.update_generator(out.loss, self.step)
        row.update(out.row)
        row["loss"] = float(out.loss.detach())
        row["grad_norm"] = opt.grad_norm
        return row

    # ------------------------------------------------------------------ checkpoints
    def save(self, snapshot: bool = True) -> Path:
        """Write ``last.pt`` (and, with ``snapshot``, the generator's snapshot of this
        step); under DDP every rank calls it and rank 0 writes."""
        self.last_save = self.elapsed
        rank_rng = distributed.gather_objects(rank_random_state(self), self.dist)
        snap = snapshot_path(self.run_dir, self.step)
        if snapshot and snap not in self.snapshots:
            self.snapshots.append(snap)
        if not self.dist.is_main:  # only rank 0 writes
            return self.run_dir / LAST
        state = full_checkpoint(self)
        if self.dist.distributed:
            state["rank_rng"] = rank_rng
        path = save_checkpoint(self.run_dir / LAST, state)
        if snapshot:
            g = self.networks.g.state_dict()
            save_checkpoint(snap, {"kind": "generator", **checkpoint_meta(self), "generator": g})
        return path

    def diverged(self, why: str) -> CryogenError:
        """The error that ends a diverged run, after checkpointing the weights if they are
        still finite (no update was applied with a bad gradient)."""
        if self.networks.finite():
            self.save(snapshot=False)
        last = self.run_dir / LAST
        where = (
            f"the weights before it are in {last}"
            if last.exists()
            else "no checkpoint was written before it"
        )
        return CryogenError(
            f"training diverged at step {self.step + 1} ({why}); {where}; try a smaller lr "
            "or amp 'off'"
        )

    # ------------------------------------------------------------------ the loop
    def run(
        self, progress: bool = True, callback: Callable[[dict[str, Any]], Any] | None = None
    ) -> TrainResult:
        """Train to the budget (see :func:`train` for ``progress`` and ``callback``)."""
        return run_training(self, progress, callback)


def train(
    config: TrainConfig,
    volumes: Sequence[ArrayLike],
    run_dir: str | Path,
    *,
    voxel_size: float = 1.0,
    masks: Sequence[ArrayLike | None] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    halves: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
    tilt_ranges: Sequence[tuple[float, float]] | None = None,
    inputs: Sequence[str] = (),
) -> TrainResult:
    """Train a generator on wedge-corrupted volumes (CryoGEN or the IsoNet-style baseline).

    Parameters
    ----------
    config
        The run's settings (``config.method`` picks the algorithm).
    volumes
        One or more volumes ``(z, y, x)`` with the missing wedge of
        ``[config.tilt_min, config.tilt_max]``; arrays, memory maps or tensors.
    run_dir
        Folder of the run: ``config.json``, ``losses.csv``, ``losses.png``, ``last.pt`` and
        ``checkpoints/step_NNNNNN.pt``.
    voxel_size
        Å per voxel, recorded in the checkpoints.
    masks
        Optional masks (one per volume, ``None`` allowed): subtomograms are cut where the mask
        covers at least ``config.mask_threshold``.
    resume
        Continue the run in ``run_dir`` from ``last.pt``; the losses then equal those of an
        uninterrupted run (with a step budget, same device and precision).
    overwrite
        Start again in a ``run_dir`` that already holds a run.
    progress
        Show a progress bar.
    callback
        Called after every step with a dict (``step``, ``elapsed_s``, ``progress``,
        ``losses``, ``generator``, ``normalisation``); returning True stops the run (with a
        checkpoint).
    halves
        Optional half-sets (Noise2Noise), one ``(half1, half2)`` pair per volume: the same
        tomogram reconstructed from the even and the odd frames (or tilts), each of its
        volume's shape, with independent noise; ``volumes[i]`` is then typically their
        mean.  Each step's input is made from one half and its loss compares against the
        other, so the network learns the signal and not the noise.
    tilt_ranges
        Optional ``(tilt_min, tilt_max)`` of each volume, degrees, for one model over
        tomograms of different tilt ranges: every subtomogram keeps its own wedge (the
        config's range is then not used).  The checkpoints record the ranges; a prediction
        gives each tomogram its own.
    inputs
        The files the volumes come from (one line each, e.g. ``"TS_01.mrc (mask
        TS_01_mask.mrc)"``), listed in ``run.log``.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError, OutputError
        Unusable inputs or run folder.
    CryogenError
        Training diverged.
    cryogen.distributed.DistributedError
        Under ``torchrun``: another rank failed or stopped answering.

    Notes
    -----
    Launched by ``torchrun`` (``RANK``/``WORLD_SIZE`` set, more than one process), every rank
    calls this with the same arguments: ``g`` and ``E`` train with DistributedDataParallel
    (global batch ``world_size * batch_size``, each rank its own crops, rotations and noise),
    rank 0's clock decides a time budget, and only rank 0 writes the run folder; see
    :mod:`cryogen.distributed`.
    """
    # under torchrun: join the job (DDP over the ranks, only rank 0 writes); else a no-op
    with distributed.session(config.device) as ctx, guard_run_dir(run_dir):
        trainer = Trainer(
            config,
            volumes,
            run_dir,
            voxel_size=voxel_size,
            masks=masks,
            resume=resume,
            overwrite=overwrite,
            dist=ctx,
            halves=halves,
            tilt_ranges=tilt_ranges,
            inputs=inputs,
        )
        return trainer.run(progress, callback)
