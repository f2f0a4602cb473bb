"""The training engine: Algorithm 1 of the paper (``method="cryogen"``) and an IsoNet-style
baseline (``method="isonet"``) with the same data, networks, optimiser and budget.

CryoGEN step (per batch of crops ``y``, all losses per-voxel means)
-------------------------------------------------------------------
* ``x_g = g(y + eps_g)``; ``fake = T_M(R(x_g))`` with ``R`` one of the 20 wedge-changing cube
  rotations; ``real = y + eps`` (``T_M(y) + eps`` with ``real_wedge``, which gives real and
  fake crops the same crop-edge statistics).
* The energy model ``E`` outputs a score ``s = -E(x)`` (high = real).  It is updated with the
  chosen adversarial loss (``bce``: the paper's; ``hinge``; ``wgan-gp``), optionally with an
  R1 penalty and instance noise, on crops with ``adv_margin`` voxels cut from each face.
* The consistency target ``t`` is by default the IsoNet-style refill of whole
  subtomograms (``consistency_target="refilled"``): ``t_i = T_M y_i + (1 - T_M) g'(y_i)``
  with ``g'`` the generator at the start of each round, which avoids the wrap-around of
  ``T_M`` on small crops and costs one forward pass per subtomogram and round.
* ``g`` minimises ``adv_weight * adv(s(fake))`` (non-saturating for bce)
  ``+ data_weight * mse(T_M x_g, T_M y)`` (``T_M y`` rather than ``y``: a crop of a wedged
  volume is not exactly ``T_M``-invariant, and ``y`` would penalise the ideal generator)
  ``+ lambda * mse(R^-1 g(T_M(R(t) + eps_h)), t)`` where ``t = g'(y)`` (paper) or, with
  ``consistency_target="wedge_filled"``, ``t = T_M y + (1 - T_M) g'(y)`` (the measured Fourier
  data kept).  ``g'`` is the current generator without gradient.
* With ``adv_source="consistency"`` (the cpu preset) the consistency branch's estimate
  ``x_hat = R^-1 g(T_M(R t + eps_h))`` replaces ``x_g`` in the energy and data terms (no
  extra generator pass), and E judges ``T_M(R2 R x_hat)`` with a second random rotation
  ``R2`` (``adv_rotate``): ``T_M(R x_hat)`` alone is mostly the part of the estimate that g
  was given as input, and would leave g's fill unseen.
* ``T_M`` in the fake and the data term acts on the crop (the paper's, ``adv_wedge`` /
  ``data_wedge="crop"``), or on the whole subtomogram with the crop's estimate pasted into
  its refilled one (``"subtomogram"``): ``T_M`` of a crop is not a crop of ``T_M``, so on
  crops even the true volume's fake is told from real data and its data term is not zero.
* ``sigma``, ``sigma_g``, ``sigma_h`` (and the instance noise) are multiplied by
  ``u ~ U(0, 1]`` drawn per step (appendix A.6).

IsoNet-style step
-----------------
Rounds (IsoNet's iterations) split the budget evenly.  At the start of each round every
subtomogram ``y_i`` is refilled: ``x_i = T_M y_i + (1 - T_M) g(y_i)`` (round 0: ``x_i = y_i``).
Training pairs are ``(T_M(R(x) + n), R(x))`` for crops ``x`` of the filled subtomograms,
with noise ``n`` whose level rises over the last rounds; the loss is the MSE.

Schedules (lr warm-up and decay, ``lambda``, the adversarial ramp, the rounds) follow the
training progress (see :mod:`cryogen.train.config`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cryogen import distributed
from cryogen.device import autocast, pick_device, resolve_amp, setup_threads
from cryogen.errors import CryogenError, InputError, OutputError
from cryogen.io import atomic_output, write_text_atomic
from cryogen.model import (
    LAST,
    SNAPSHOT_DIR,
    Normalisation,
    build_energy,
    build_generator,
    generator_output,
    load_checkpoint,
    save_checkpoint,
    snapshot_path,
)
from cryogen.rotations import (
    WEDGE_ROTATIONS,
    compose,
    rotate,
    rotate_box,
    rotate_inverse,
    rotation_mean,
)
from cryogen.train.config import TrainConfig, saved_config_fill
from cryogen.train.data import SubtomoDataset
from cryogen.train.random_state import capture_rng_state, restore_rng_state
from cryogen.wedge import missing_wedge_mask, wedge_operator, wedge_symmetries

__all__ = [
    "LOSS_COLUMNS",
    "RESUMABLE_FIELDS",
    "TrainResult",
    "train",
]

logger = logging.getLogger(__name__)

# updates skipped for non-finite gradients in a row before training stops as diverged
MAX_SKIPPED_IN_A_ROW = 20

LOSS_COLUMNS = (
    "step",
    "elapsed_s",
    "progress",
    "lr",
    "lambda",
    "adv_weight",
    "loss",
    "data",
    "consistency",
    "adv_g",
    "d_loss",
    "d_real",
    "d_fake",
    "penalty",
    "round",
    "noise",
    "grad_norm",
)
# Fields a resumed run may change (the rest must equal the checkpoint's).
RESUMABLE_FIELDS = frozenset(
    {
        "steps",
        "minutes",
        "device",
        "amp",
        "threads",
        "checkpoint_every",
        "checkpoint_minutes",
        "log_every",
    }
)


# ---------------------------------------------------------------------------- losses
def _d_loss(kind: str, s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - s_real).mean() + F.relu(1.0 + s_fake).mean()
    return s_fake.mean() - s_real.mean()  # wgan-gp critic


def _g_adv(kind: str, s_fake: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return F.softplus(-s_fake).mean()  # non-saturating generator loss
    return -s_fake.mean()


def _rot(x: torch.Tensor, rots: Sequence[int], inverse: bool = False) -> torch.Tensor:
    """Rotate each batch element ``x[b]`` ``(C, z, y, x)`` by its own cube rotation."""
    f = rotate_inverse if inverse else rotate
    return torch.stack([f(x[b], r) for b, r in enumerate(rots)])


def _margin(x: torch.Tensor, m: int) -> torch.Tensor:
    return x if m <= 0 else x[..., m:-m, m:-m, m:-m]


# ---------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    run_dir : Path
    step : int
        Steps done in total (resumed runs included).
    elapsed_s : float
        Training wall time in total, seconds.
    losses : dict
        The last logged row of ``losses.csv``.
    checkpoint : Path
        The full checkpoint ``RUN_DIR/last.pt``.
    generator : torch.nn.Module
        The trained generator (on the training device, eval mode).
    config : TrainConfig
    normalisation : Normalisation
    interrupted : bool
        True when Ctrl-C (or the callback) stopped the run before its budget.
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


# ---------------------------------------------------------------------------- trainer
class _Trainer:
    def __init__(
        self,
        config: TrainConfig,
        volumes: Sequence[np.ndarray | torch.Tensor],
        run_dir: Path,
        *,
        voxel_size: float,
        masks: Sequence[np.ndarray | torch.Tensor | None] | None,
        resume: bool,
        overwrite: bool,
        dist: distributed.DistContext | None = None,
    ) -> None:
        self.cfg = cfg = config
        self.run_dir = run_dir
        self.voxel_size = float(voxel_size)
        # torchrun: this rank's place in the job (rank 0 of 1 otherwise) and its device
        self.dist = dist or distributed.DistContext(device=pick_device(cfg.device))
        self.device = self.dist.device
        setup_threads(cfg.threads)
        self.amp = resolve_amp(cfg.amp, self.device)
        ckpt: dict[str, Any] | None = None
        last = run_dir / LAST
        if resume:
            if not last.is_file():
                raise InputError(f"{run_dir}: nothing to resume (no {LAST})")
            ckpt = load_checkpoint(last)
            self._check_resumable(ckpt)
        else:
            self._prepare_run_dir(overwrite)

        # seeds: global RNGs (model init, dropout), then independent named streams
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)  # noqa: NPY002 (legacy global RNG, if anyone uses it)
        import random

        random.seed(cfg.seed)
        # E's draws (and the data term's) have their own streams, so that the crops,
        # rotations and consistency noise of a CryoGEN run are those of an IsoNet-style run
        # with the same seed: with E and the data term off the two train the same weights
        ss_data, ss_step, ss_noise, ss_estep, ss_enoise = np.random.SeedSequence(cfg.seed).spawn(5)
        rank = self.dist.rank
        if rank > 0:  # own crops, rotations and noise per rank; same subtomograms (ss_data)
            ss_crop, ss_step, ss_noise, ss_estep, ss_enoise = distributed.rank_seed_sequence(
                cfg.seed, rank
            ).spawn(5)
        norm = Normalisation.from_dict(ckpt["normalisation"]) if ckpt else None
        if norm is None and not cfg.normalise:
            norm = Normalisation(0.0, 1.0)
        self.data = SubtomoDataset(
            volumes,
            subtomo_size=cfg.subtomo_size,
            n_subtomos=cfg.n_subtomos,
            crop_size=cfg.crop_size,
            masks=masks,
            mask_threshold=cfg.mask_threshold,
            normalisation=norm,
            seed=int(ss_data.generate_state(1)[0]),
            device=self.device,
        )
        if rank > 0:
            self.data.rng = np.random.default_rng(ss_crop)
        self._seed_streams(ss_step, ss_noise, ss_estep, ss_enoise)

        self.fmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
        self.g = build_generator(cfg).to(self.device, memory_format=self.fmt)
        torch.manual_seed(cfg.seed + 1)
        self.use_e = cfg.method == "cryogen" and cfg.adv_weight > 0
        self.e_on = self.use_e  # this step: E learns and judges (from d_start on)
        self.e = build_energy(cfg).to(self.device, memory_format=self.fmt) if self.use_e else None
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_d = (
            torch.optim.Adam(self.e.parameters(), lr=cfg.d_lr, betas=tuple(cfg.d_betas))
            if self.e is not None
            else None
        )
        fp16 = self.amp == torch.float16
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        c = self.data.crop_size
        self.mask = missing_wedge_mask((c, c, c), cfg.tilt_min, cfg.tilt_max, device=self.device)
        s = self.data.size
        self.mask_sub = missing_wedge_mask(
            (s, s, s), cfg.tilt_min, cfg.tilt_max, device=self.device
        )
        self.step = 0
        self.elapsed = 0.0
        self.iso_round = -1
        self.refill_next = 0
        self.filled: torch.Tensor | None = None
        self.real_sub: torch.Tensor | None = None  # T_M of each subtomogram, when needed
        self.stop_requested = False
        self.snapshots: list[Path] = []
        self.last_save = 0.0
        self.skipped_steps = 0  # updates skipped for non-finite gradients
        self.skipped_in_a_row = 0
        self.grad_norm = math.nan  # g's gradient norm of the last update
        if ckpt is not None:
            self._load_state(ckpt)
        # DDP (torchrun): gradient all-reduce for the forward passes that need it; None alone
        self.g_ddp = distributed.wrap_ddp(self.g, self.dist)
        self.e_ddp = distributed.wrap_ddp(self.e, self.dist) if self.e is not None else None
        # a fresh run re-seeds the global torch RNG so that training does not depend on
        # how many random numbers the model constructors used
        if ckpt is None:
            torch.manual_seed(distributed.rank_seed(cfg.seed + 2, rank))
        self.csv_path = run_dir / "losses.csv"
        distributed.barrier(self.dist, "the run folder checks")  # before rank 0 writes there
        if self.dist.is_main:  # only rank 0 writes files
            self._init_csv(resumed=ckpt is not None)
            write_text_atomic(run_dir / "config.json", cfg.to_json() + "\n")

    # ------------------------------------------------------------------ setup helpers
    def _prepare_run_dir(self, overwrite: bool) -> None:
        rd = self.run_dir
        if rd.exists() and not rd.is_dir():
            raise OutputError(f"{rd}: exists and is not a folder")
        existing = [rd / LAST, rd / SNAPSHOT_DIR, rd / "losses.csv"]
        if any(p.exists() for p in existing):
            if not overwrite:
                raise OutputError(
                    f"{rd}: already holds a training run; use --resume to continue it or "
                    "--overwrite to start again"
                )
            for p in existing + [rd / "losses.png", rd / "config.json"]:
                if not self.dist.is_main:  # under DDP the other ranks only check
                    break
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        if not self.dist.is_main:
            return
        try:
            rd.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{rd}: cannot create the run folder: {exc}") from None

    def _check_resumable(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("kind") != "full":
            raise InputError(f"{self.run_dir / LAST}: not a full checkpoint; cannot resume")
        old = {**saved_config_fill(ckpt["config"]), **ckpt["config"]}
        new = self.cfg.model_dump(mode="json")
        diff = [k for k in new if k not in RESUMABLE_FIELDS and old.get(k) != new[k]]
        if diff:
            shown = ", ".join(f"{k} ({old.get(k)!r} -> {new[k]!r})" for k in diff[:6])
            raise InputError(
                f"{self.run_dir}: cannot resume with settings that differ from the run's: {shown}"
            )

    def _init_csv(self, resumed: bool) -> None:
        p = self.csv_path
        if resumed and p.is_file():
            # drop rows logged after the checkpoint, so the file equals an uninterrupted run's
            with p.open(newline="") as fh:
                rows = list(csv.reader(fh))
            # a file from a version with fewer columns gets today's header (its old rows
            # then leave the new columns empty)
            cols = list(LOSS_COLUMNS)
            header = cols if rows[0] == cols[: len(rows[0])] else rows[0]
            keep = [header] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
            with atomic_output(p, overwrite=True) as tmp, tmp.open("w", newline="") as fh:
                csv.writer(fh).writerows(keep)
        else:
            with p.open("w", newline="") as fh:
                csv.writer(fh).writerow(LOSS_COLUMNS)

    # ------------------------------------------------------------------ state
    def _meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "config": cfg.model_dump(mode="json"),
            "method": cfg.method,
            "tilt_min": float(cfg.tilt_min),
            "tilt_max": float(cfg.tilt_max),
            "voxel_size": self.voxel_size,
            "normalisation": self.data.normalisation.to_dict(),
            "crop_size": int(self.data.crop_size),
            "step": int(self.step),
            "elapsed_s": float(self.elapsed),
            "world_size": int(self.dist.world_size),
        }

    def _full_state(self) -> dict[str, Any]:
        state = {
            "kind": "full",
            **self._meta(),
            "generator": self.g.state_dict(),
            "energy": self.e.state_dict() if self.e is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "rng": capture_rng_state(*self._streams()),
            "data": self.data.state_dict(),
            "isonet": {
                "round": self.iso_round,
                "next": self.refill_next,
                "filled": None if self.filled is None else self.filled.cpu(),
            },
        }
        return state

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.g.load_state_dict(ckpt["generator"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        if self.e is not None:
            if ckpt.get("energy") is None:
                raise InputError(f"{self.run_dir / LAST}: the checkpoint has no energy model")
            self.e.load_state_dict(ckpt["energy"])
            self.opt_d.load_state_dict(ckpt["opt_d"])  # type: ignore[union-attr]
        self.scaler_g.load_state_dict(ckpt["scaler_g"])
        self.scaler_d.load_state_dict(ckpt["scaler_d"])
        self.data.load_state_dict(ckpt["data"])
        restore_rng_state(ckpt["rng"], *self._streams(ckpt["rng"]))
        self.step = int(ckpt["step"])
        self._restore_rank_rng(ckpt)
        self.elapsed = float(ckpt["elapsed_s"])
        self.last_save = self.elapsed
        iso = ckpt.get("isonet") or {}
        self.iso_round = int(iso.get("round", -1))
        self.refill_next = int(iso.get("next", 0))
        filled = iso.get("filled")
        self.filled = None if filled is None else filled.to(self.device)
        logger.info("resumed %s at step %d (%.1f s)", self.run_dir, self.step, self.elapsed)

    def _seed_streams(self, *seqs: np.random.SeedSequence) -> None:
        """The step's rotations and ``u``s, its consistency noise, and E's draws and noise,
        from four seed sequences."""
        ss_step, ss_noise, ss_estep, ss_enoise = seqs
        self.rng = np.random.default_rng(ss_step)
        self.noise_gen = torch.Generator().manual_seed(int(ss_noise.generate_state(1)[0]))
        self.e_rng = np.random.default_rng(ss_estep)
        self.e_noise_gen = torch.Generator().manual_seed(int(ss_enoise.generate_state(1)[0]))

    def _streams(
        self, saved: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.random.Generator], dict[str, torch.Generator]]:
        """The named random streams of a step, for :func:`capture_rng_state`; with
        ``saved`` (a captured state) only those it holds: a checkpoint written before E had
        its own streams leaves them as the seed made them."""
        nps = {"step": self.rng, "e_step": self.e_rng}
        ts = {"noise": self.noise_gen, "e_noise": self.e_noise_gen}
        if saved is not None:
            nps = {k: g for k, g in nps.items() if k in saved["named_numpy"]}
            ts = {k: g for k, g in ts.items() if k in saved["named_torch"]}
        return nps, ts

    def _rank_rng(self) -> dict[str, Any]:
        return {
            "rng": capture_rng_state(*self._streams()),
            "crops": self.data.rng.bit_generator.state,
        }

    def _restore_rank_rng(self, ckpt: dict[str, Any]) -> None:
        """Under DDP, rank r continues its own streams (``rank_rng[r]``); a rank the checkpoint
        does not know (more ranks than the run had) starts fresh streams keyed by the step."""
        rank, states = self.dist.rank, ckpt.get("rank_rng") or []
        if rank < len(states):
            if rank > 0:
                st = states[rank]
                restore_rng_state(st["rng"], *self._streams(st["rng"]))
                self.data.rng.bit_generator.state = st["crops"]
        elif rank > 0:
            ss_crop, ss_step, ss_noise, ss_estep, ss_enoise = distributed.rank_seed_sequence(
                self.cfg.seed, rank, self.step
            ).spawn(5)
            self.data.rng = np.random.default_rng(ss_crop)
            self._seed_streams(ss_step, ss_noise, ss_estep, ss_enoise)
            torch.manual_seed(distributed.rank_seed(self.cfg.seed + 2, rank, self.step))
        old = int(ckpt.get("world_size", 1))
        if old != self.dist.world_size and self.dist.is_main:
            logger.warning(
                "resuming a run of %d rank(s) with %d: the global batch changes and the "
                "continuation differs from an uninterrupted run",
                old,
                self.dist.world_size,
            )

    def save(self, snapshot: bool = True) -> Path:
        self.last_save = self.elapsed
        rank_rng = distributed.gather_objects(self._rank_rng(), self.dist)  # on every rank
        if not self.dist.is_main:  # only rank 0 writes
            if snapshot and snapshot_path(self.run_dir, self.step) not in self.snapshots:
                self.snapshots.append(snapshot_path(self.run_dir, self.step))
            return self.run_dir / LAST
        state = self._full_state()
        if self.dist.distributed:
            state["rank_rng"] = rank_rng
        path = save_checkpoint(self.run_dir / LAST, state)
        if snapshot:
            snap = snapshot_path(self.run_dir, self.step)
            save_checkpoint(
                snap, {"kind": "generator", **self._meta(), "generator": self.g.state_dict()}
            )
            if snap not in self.snapshots:
                self.snapshots.append(snap)
        return path

    # ------------------------------------------------------------------ schedule
    def progress(self) -> float:
        cfg = self.cfg
        p = 0.0
        if cfg.steps is not None:
            p = max(p, self.step / cfg.steps)
        if cfg.minutes is not None:
            p = max(p, self.elapsed / (60.0 * cfg.minutes))
        return min(1.0, p)

    def done(self) -> bool:
        cfg = self.cfg
        if cfg.steps is not None and self.step >= cfg.steps:
            return True
        return cfg.minutes is not None and self.elapsed >= 60.0 * cfg.minutes

    # ------------------------------------------------------------------ numerics
    def _randn(self, shape: torch.Size | tuple[int, ...], *, e: bool = False) -> torch.Tensor:
        """Standard normal noise from the consistency stream, or with ``e`` from E's."""
        gen = self.e_noise_gen if e else self.noise_gen
        return torch.randn(shape, generator=gen).to(self.device)

    def _draw_rotations(self, n: int, *, e: bool = False) -> list[int]:
        """``n`` rotations drawn from the 20 wedge-changing ones (the step's stream, or
        with ``e`` E's)."""
        rng = self.e_rng if e else self.rng
        return [WEDGE_ROTATIONS[int(rng.integers(len(WEDGE_ROTATIONS)))] for _ in range(n)]

    def _u(self, *, e: bool = False) -> float:
        """``u ~ U(0, 1]`` from the step's stream, or with ``e`` from E's."""
        return 1.0 - float((self.e_rng if e else self.rng).random())

    def _g(self, x: torch.Tensor) -> torch.Tensor:
        # DDP only where a backward pass follows; g' (no grad) is the plain module
        g = self.g_ddp if self.g_ddp is not None and torch.is_grad_enabled() else self.g
        with autocast(self.device, self.amp):
            out = g(x.contiguous(memory_format=self.fmt))
        return generator_output(out).float().contiguous()

    def _e(self, x: torch.Tensor, *, amp: bool = True) -> torch.Tensor:
        assert self.e is not None
        # DDP only in E's own update (its parameters require grad); g's energy term uses E
        # as a fixed function, whose parameter gradients are neither needed nor synchronised
        e = self.e
        if self.e_ddp is not None and torch.is_grad_enabled():
            e = self.e_ddp if next(self.e.parameters()).requires_grad else self.e
        with autocast(self.device, self.amp if amp else None):
            s = e(x.contiguous(memory_format=self.fmt))
        return s.float().reshape(-1)

    def _tm(self, x: torch.Tensor) -> torch.Tensor:
        return wedge_operator(x, self.mask)

    def _backward_step(
        self,
        loss: torch.Tensor,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        params: Any,
        clip: float | None,
    ) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        params = [q for q in params if q.grad is not None]
        # fp16's GradScaler skips such steps itself; otherwise one device sync for all
        # parameters, not one per tensor
        if (
            not scaler.is_enabled()
            and params
            and not bool(torch.stack([torch.isfinite(q.grad).all() for q in params]).all())
        ):
            # A finite loss with a non-finite gradient: seen rarely (~1 step in 100) in CPU
            # bf16 convolutions on 2^3 feature maps (32^3 crops) and not reproducible from
            # the same tensors; skip the update as fp16's GradScaler does, fail if it persists.
            opt.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self.skipped_in_a_row += 1
            log = logger.warning if self.skipped_steps == 1 else logger.info
            log("step %d: non-finite gradient, update skipped", self.step + 1)
            if self.skipped_in_a_row > MAX_SKIPPED_IN_A_ROW:
                self._diverged(f"non-finite gradients in {self.skipped_in_a_row} steps in a row")
            return
        self.skipped_in_a_row = 0
        if clip is not None or opt is self.opt_g:
            # g's gradient norm (before clipping) is logged: spikes show an unstable run
            scaler.unscale_(opt)
            norm = torch.nn.utils.clip_grad_norm_(params, math.inf if clip is None else clip)
            if opt is self.opt_g:
                self.grad_norm = float(norm)
        scaler.step(opt)
        scaler.update()

    def _set_lr(self, p: float) -> float:
        f = self.cfg.lr_factor(p)
        for grp in self.opt_g.param_groups:
            grp["lr"] = self.cfg.lr * f
        if self.opt_d is not None:
            for grp in self.opt_d.param_groups:
                grp["lr"] = self.cfg.d_lr * f
        return self.cfg.lr * f

    # ------------------------------------------------------------------ CryoGEN step
    def _d_update(self, real: torch.Tensor, fake: torch.Tensor, ui: float) -> dict[str, float]:
        cfg = self.cfg
        assert self.e is not None and self.opt_d is not None
        self.e.requires_grad_(True)
        stats: dict[str, float] = {}
        for _ in range(cfg.d_steps):
            r, f = real.detach(), fake.detach()
            if cfg.instance_noise > 0:
                r = r + cfg.instance_noise * ui * self._randn(r.shape, e=True)
                f = f + cfg.instance_noise * ui * self._randn(f.shape, e=True)
            r, f = _margin(r, cfg.adv_margin), _margin(f, cfg.adv_margin)
            penalty = torch.zeros((), device=self.device)
            if cfg.r1_weight > 0:
                r = r.requires_grad_(True)
                s_real = self._e(r, amp=False)
                (grad,) = torch.autograd.grad(s_real.sum(), r, create_graph=True)
                penalty = penalty + 0.5 * cfg.r1_weight * grad.pow(2).flatten(1).sum(1).mean()
            else:
                s_real = self._e(r)
            s_fake = self._e(f)
            loss = _d_loss(cfg.adv_loss, s_real, s_fake)
            if cfg.adv_loss == "wgan-gp" and cfg.gp_weight > 0:
                alpha = torch.rand((r.shape[0], 1, 1, 1, 1), generator=self.e_noise_gen)
                x_hat = alpha.to(self.device) * r.detach() + (1 - alpha.to(self.device)) * f
                x_hat.requires_grad_(True)
                s_hat = self._e(x_hat, amp=False)
                (grad,) = torch.autograd.grad(s_hat.sum(), x_hat, create_graph=True)
                gp = (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
                penalty = penalty + cfg.gp_weight * gp
            total = loss + penalty
            self._backward_step(total, self.opt_d, self.scaler_d, self.e.parameters(), None)
            stats = {
                "d_loss": float(loss.detach()),
                "d_real": float(s_real.detach().mean()),
                "d_fake": float(s_fake.detach().mean()),
                "penalty": float(penalty.detach()),
            }
        self.e.requires_grad_(False)
        return stats

    def _step_cryogen(self, p: float) -> dict[str, float]:
        cfg = self.cfg
        b = cfg.batch_size
        refilled = cfg.consistency_target == "refilled"
        row: dict[str, float] = {}
        if refilled:
            self._update_filled(p)
            if cfg.refill_every is None:
                row["round"] = float(self.iso_round)
        idx, offs = self.data.draw(b)
        y = self.data.crop(self.data.subtomos, idx, offs)  # (B, 1, C, C, C)
        uh = self._u()  # the consistency noise's u, drawn where the IsoNet-style step draws its
        rots = self._draw_rotations(b)
        u, ug, ui = (self._u(e=True) for _ in range(3))  # E's and the data term's
        lam = cfg.lambda_at(p)
        adv_w = cfg.adv_weight * cfg.adv_factor(p)
        row.update({"lambda": lam, "adv_weight": adv_w})
        gan_step = self.step % cfg.gan_every == 0
        # E learns (and makes fakes) from d_start on; before, the step is E-free
        self.e_on = self.use_e and p >= cfg.d_start
        from_cons = cfg.adv_source == "consistency"
        need_xg = gan_step and not from_cons and (cfg.data_weight > 0 or self.e_on)
        total = torch.zeros((), device=self.device)
        xg = None
        if need_xg:
            x_in = y + cfg.sigma_g * ug * self._randn(y.shape, e=True) if cfg.sigma_g > 0 else y
            xg = self._g(x_in)  # (B, 1, C, C, C), with gradient
        if gan_step and not from_cons and xg is not None:
            # the paper's fake T_M(R g(y + eps_g)); the data term compares T_M g(y + eps_g)
            fake = self._fake(xg, lambda: _rot(xg, rots), idx, offs, rots)
            total = total + self._energy_and_data(xg, fake, y, idx, offs, u, ui, adv_w, row)
        if lam > 0 or (from_cons and gan_step):
            with torch.no_grad():
                if refilled:
                    assert self.filled is not None
                    target = self.data.crop(self.filled, idx, offs)
                else:
                    if cfg.consistency_forward == "reuse" and xg is not None:
                        xp = xg.detach()
                    else:
                        xp = self._g(y)
                    target = xp if cfg.consistency_target == "generator" else self._tm(y - xp) + xp
                inp = _rot(target, rots)
                sigma_h = cfg.sigma_h_at(p)
                if sigma_h > 0:
                    inp = inp + sigma_h * uh * self._randn(inp.shape)
                row["noise"] = sigma_h * uh
                inp = self._tm(inp)
            out_rot = self._g(inp)  # estimate of R t, in the rotated frame
            out = _rot(out_rot, rots, inverse=True)
            cons = F.mse_loss(out, target)
            total = total + lam * cons
            row["consistency"] = float(cons.detach())
            if from_cons and gan_step:
                # the estimate x_hat = R^-1 g(T_M(R t + eps_h)) of the whole crop stands in
                # for g(y), no extra generator pass.  fake = T_M(R x_hat) = T_M(out_rot)
                # would show E mostly what g was given (its input is T_M of the same
                # frame); a second rotation R2 brings g's fill into E's view
                fake_rots = rots
                if cfg.adv_rotate and self.e_on:
                    r2 = self._draw_rotations(b, e=True)
                    fake_rots = [compose(a, r) for a, r in zip(r2, rots, strict=True)]
                    fake = self._fake(out, lambda: _rot(out_rot, r2), idx, offs, fake_rots)
                else:
                    fake = self._fake(out, lambda: out_rot, idx, offs, fake_rots)
                total = total + self._energy_and_data(out, fake, y, idx, offs, u, ui, adv_w, row)
        if total.requires_grad:
            self._check_finite(total)
            self._backward_step(
                total, self.opt_g, self.scaler_g, self.g.parameters(), cfg.grad_clip
            )
        row["loss"] = float(total.detach())
        return row

    def _fake(
        self,
        est: torch.Tensor,
        est_rot: Callable[[], torch.Tensor],
        idx: list[int],
        offs: list[tuple[int, int, int]],
        rots: Sequence[int],
    ) -> torch.Tensor | None:
        """E's fake for the estimate ``est`` of the crops (with gradient); None without E.

        ``adv_wedge="crop"``: ``T_M`` of ``est_rot()``, the estimate rotated by ``rots``
        (the paper).  ``"subtomogram"``: each crop's estimate is pasted into its refilled
        subtomogram, which is rotated by ``rots``, given the subtomogram's wedge, and cut
        where the crop went; with the true volume this fake is a crop of wedged data, as
        the real samples are, while ``T_M`` of a crop mixes in the crop's missing wedge.
        """
        if not self.e_on:
            return None
        if self.cfg.adv_wedge == "crop":
            return self._tm(est_rot())
        return self._wedged_in_subtomogram(est, idx, offs, rots)

    def _wedged_in_subtomogram(
        self,
        est: torch.Tensor,
        idx: list[int],
        offs: list[tuple[int, int, int]],
        rots: Sequence[int],
    ) -> torch.Tensor:
        """Each crop's estimate pasted into its refilled subtomogram, which is rotated by
        ``rots``, given the subtomogram's wedge ``T_M``, and cut where the crop went
        (gradient through ``est`` only)."""
        assert self.filled is not None
        s, c = self.data.size, self.data.crop_size
        out = []
        for b, (i, o, r) in enumerate(zip(idx, offs, rots, strict=True)):
            base = self.filled[i]
            inside = base[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]
            pad = (o[2], s - c - o[2], o[1], s - c - o[1], o[0], s - c - o[0])
            full = base + F.pad(est[b, 0].float() - inside, pad)  # gradient inside only
            wedged = wedge_operator(rotate(full, r)[None, None], self.mask_sub)[0, 0]
            z, y, x = rotate_box(o, c, s, r)
            out.append(wedged[z : z + c, y : y + c, x : x + c])
        return torch.stack(out)[:, None]

    def _real(
        self, y: torch.Tensor, idx: list[int], offs: list[tuple[int, int, int]]
    ) -> torch.Tensor:
        """E's real samples for the crops ``y``, wedged like the fakes with ``real_wedge``."""
        if not self.cfg.real_wedge:
            return y
        if self.cfg.adv_wedge == "crop":
            return self._tm(y)
        return self._wedged_subtomogram_crops(idx, offs)

    def _wedged_subtomogram_crops(
        self, idx: list[int], offs: list[tuple[int, int, int]]
    ) -> torch.Tensor:
        """Crops of ``T_M`` of the measured subtomograms (each wedged once, then kept)."""
        if self.real_sub is None:
            self.real_sub = torch.stack(
                [wedge_operator(v[None, None], self.mask_sub)[0, 0] for v in self.data.subtomos]
            )
        return self.data.crop(self.real_sub, idx, offs)

    def _energy_and_data(
        self,
        est: torch.Tensor,
        fake: torch.Tensor | None,
        y: torch.Tensor,
        idx: list[int],
        offs: list[tuple[int, int, int]],
        u: float,
        ui: float,
        adv_w: float,
        row: dict[str, float],
    ) -> torch.Tensor:
        """Update E on (real, fake) and return g's weighted energy and data terms.

        ``est`` is the generator's estimate of the whole crop ``y`` (with gradient) and
        ``fake`` E's fake made of it (:meth:`_fake`; None without E).
        """
        cfg = self.cfg
        total = torch.zeros((), device=self.device)
        if self.e_on:
            assert fake is not None
            real = self._real(y, idx, offs)
            if cfg.sigma > 0:
                real = real + cfg.sigma * u * self._randn(real.shape, e=True)
            row.update(self._d_update(real, fake, ui))
            if adv_w > 0:
                f = fake
                if cfg.instance_noise > 0:
                    f = f + cfg.instance_noise * ui * self._randn(f.shape, e=True)
                adv = _g_adv(cfg.adv_loss, self._e(_margin(f, cfg.adv_margin)))
                total = total + adv_w * adv
                row["adv_g"] = float(adv.detach())
        if cfg.data_weight > 0:
            if cfg.data_wedge == "crop":
                # ||T_M est - T_M y||^2 on the crop (the paper's): T_M of a crop spreads the
                # truth's missing wedge into the measured band, so the truth scores > 0
                diff = self._tm(est - y)
            else:  # the same with T_M of the subtomogram: zero at the truth
                ident = [0] * len(idx)  # CUBE_ROTATIONS[0] is the identity
                diff = self._wedged_in_subtomogram(
                    est, idx, offs, ident
                ) - self._wedged_subtomogram_crops(idx, offs)
            data = _margin(diff, cfg.data_margin).pow(2).mean()
            total = total + cfg.data_weight * data
            row["data"] = float(data.detach())
        return total

    # ------------------------------------------------------------------ IsoNet step
    @torch.no_grad()
    def _refill_one(self, i: int) -> None:
        """``x_i = T_M y_i + (1 - T_M) g(y_i)`` for subtomogram ``i`` (IsoNet's refill);
        with ``refill_tta`` ``g(y_i)`` is the mean of ``R^-1 g(R y_i)`` over the rotations
        that keep the wedge (the subtomograms are cubes)."""
        assert self.filled is not None
        was_training = self.g.training
        self.g.eval()
        y = self.data.subtomos[i][None, None]
        if self.data.size > 2 * self.data.crop_size:
            from cryogen.tiling import sliding_window_inference

            def g_of(v: torch.Tensor) -> torch.Tensor:
                return sliding_window_inference(
                    v, self._g, roi_size=self.data.crop_size, overlap=self.data.crop_size // 4
                )
        else:
            g_of = self._g
        cfg = self.cfg
        rots = wedge_symmetries(cfg.tilt_min, cfg.tilt_max) if cfg.refill_tta else (0,)
        gy = rotation_mean(g_of, y, rots)
        self.filled[i] = (wedge_operator(y - gy, self.mask_sub) + gy)[0, 0]
        self.g.train(was_training)

    def _update_filled(self, p: float) -> None:
        """Keep the refilled targets current: all of them at the start of each of the
        ``rounds`` rounds (IsoNet), or with ``refill_every`` one subtomogram every that
        many steps, in turn (a rolling refill; the round index then only sets the noise)."""
        cfg = self.cfg
        if self.filled is None:
            self.filled = self.data.subtomos.clone()  # g' = identity before training
            self.refill_next = 0
            self.iso_round = 0
        rnd = cfg.round_at(p)
        if cfg.refill_every is None:
            if rnd > self.iso_round:
                self._refill()
        elif self.step > 0 and self.step % cfg.refill_every == 0:
            self._refill_one(self.refill_next)
            self.refill_next = (self.refill_next + 1) % len(self.data)
        self.iso_round = max(self.iso_round, rnd)

    def _refill(self) -> None:
        """Refill every subtomogram (the start of an IsoNet round; ``filled`` exists)."""
        for i in range(len(self.data)):
            self._refill_one(i)

    def _step_isonet(self, p: float) -> dict[str, float]:
        cfg = self.cfg
        self._update_filled(p)
        b = cfg.batch_size
        idx, offs = self.data.draw(b)
        x = self.data.crop(self.filled, idx, offs)
        u = self._u()
        rots = self._draw_rotations(b)
        target = _rot(x, rots)
        level = cfg.isonet_noise(self.iso_round) * (u if cfg.isonet_noise_uniform else 1.0)
        inp = target + level * self._randn(target.shape) if level > 0 else target
        inp = self._tm(inp)
        loss = F.mse_loss(self._g(inp), target)
        self._check_finite(loss)
        self._backward_step(loss, self.opt_g, self.scaler_g, self.g.parameters(), cfg.grad_clip)
        return {
            "loss": float(loss.detach()),
            "consistency": float(loss.detach()),
            "round": float(self.iso_round),
            "noise": level,
        }

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach())):
            self._diverged("non-finite loss")

    def _diverged(self, why: str) -> None:
        """Stop training: checkpoint the weights if they are still finite, then raise."""
        nets = [self.g] + ([self.e] if self.e is not None else [])
        finite = all(bool(torch.isfinite(q).all()) for n in nets for q in n.parameters())
        if finite:
            self.save(snapshot=False)  # no update was applied with a bad gradient
        last = self.run_dir / LAST
        where = (
            f"the weights before it are in {last}"
            if last.exists()
            else "no checkpoint was written before it"
        )
        raise CryogenError(
            f"training diverged at step {self.step + 1} ({why}); {where}; try a smaller "
            "learning rate or --set amp=off"
        )

    # ------------------------------------------------------------------ loop
    def run(self, progress: bool, callback: Callable[[dict[str, Any]], Any] | None) -> TrainResult:
        cfg = self.cfg
        self.g.train()
        if self.e is not None:
            self.e.train()
            self.e.requires_grad_(False)
        last_row: dict[str, float] = {}
        interrupted = False
        bar = _ProgressBar(cfg, enabled=progress and self.dist.is_main)
        handler_installed = False
        old_handler: Any = None
        old_term: Any = None
        if threading.current_thread() is threading.main_thread():

            def _on_sigint(signum: int, frame: Any) -> None:
                if self.stop_requested:  # second Ctrl-C: stop at once
                    raise KeyboardInterrupt
                self.stop_requested = True
                logger.warning(
                    "interrupt: writing a checkpoint after this step "
                    "(press Ctrl-C again to abort without it)"
                )

            old_handler = signal.signal(signal.SIGINT, _on_sigint)
            handler_installed = True
            if self.dist.distributed:  # torchrun and Slurm stop workers with SIGTERM
                old_term = signal.signal(signal.SIGTERM, _on_sigint)
        csv_fh = (self.csv_path if self.dist.is_main else Path(os.devnull)).open("a", newline="")
        writer = csv.writer(csv_fh)
        try:
            bar.start(self.step, self.elapsed)
            t_prev = time.perf_counter()
            while not self.done():
                p = self.progress()
                lr = self._set_lr(p)
                self.grad_norm = math.nan  # stays NaN where the update was skipped
                row = self._step_cryogen(p) if cfg.method == "cryogen" else self._step_isonet(p)
                row["grad_norm"] = self.grad_norm
                self.step += 1
                now = time.perf_counter()
                self.elapsed += now - t_prev
                t_prev = now
                stop = False
                if self.dist.distributed:
                    # one all-reduce: rank 0's clock (the budget ends on the same step
                    # everywhere), anybody's stop request, the losses' means over the ranks
                    self.elapsed, stop, mean = distributed.step_sync(
                        self.elapsed,
                        self.stop_requested,
                        {c: row.get(c, math.nan) for c in LOSS_COLUMNS[4:]},
                        self.dist,
                    )
                    row = {**row, **{k: v for k, v in mean.items() if not math.isnan(v)}}
                row = {"step": self.step, "elapsed_s": self.elapsed, "progress": p, "lr": lr, **row}
                last_row = row
                if self.step % cfg.log_every == 0 or self.done():
                    writer.writerow([_fmt(row.get(c, math.nan)) for c in LOSS_COLUMNS])
                    csv_fh.flush()
                bar.update(self.step, self.elapsed, row)
                if callback is not None:
                    stop = (
                        distributed.any_flag(
                            bool(
                                callback(
                                    {
                                        "step": self.step,
                                        "elapsed_s": self.elapsed,
                                        "progress": p,
                                        "losses": row,
                                        "generator": self.g,
                                        "normalisation": self.data.normalisation,
                                    }
                                )
                            ),
                            self.dist,
                        )
                        or stop
                    )
                due = self.step % cfg.checkpoint_every == 0 or (
                    cfg.checkpoint_minutes is not None
                    and self.elapsed - self.last_save >= 60.0 * cfg.checkpoint_minutes
                )
                if due and not self.done():
                    self.save()
                    t_prev = time.perf_counter()  # checkpoint writing is not training time
                # under DDP only the agreed flag counts (a signal after the sync: next step)
                if stop or (self.stop_requested and not self.dist.distributed):
                    interrupted = True
                    break
        finally:
            csv_fh.close()
            bar.stop()
            if handler_installed:
                signal.signal(signal.SIGINT, old_handler)
                if old_term is not None:
                    signal.signal(signal.SIGTERM, old_term)
        path = self.save()
        if interrupted:
            logger.warning(
                "stopped at step %d; checkpoint %s (continue with --resume)", self.step, path
            )
        if self.dist.is_main:
            _plot_losses(self.csv_path, self.run_dir / "losses.png")
        if not distributed.replicas_equal(self.g, self.dist):
            logger.error("rank %d: the generator's replicas differ between ranks", self.dist.rank)
        self.g.eval()
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            elapsed_s=self.elapsed,
            losses=last_row,
            checkpoint=path,
            generator=self.g,
            config=cfg,
            normalisation=self.data.normalisation,
            interrupted=interrupted,
            snapshots=list(self.snapshots),
        )


def _fmt(v: Any) -> str:
    if isinstance(v, int):
        return str(v)
    v = float(v)
    return "" if math.isnan(v) else f"{v:.9g}"


class _ProgressBar:
    """A rich progress bar over steps (or seconds, with a time budget) with the loss terms."""

    KEYS = (
        ("loss", "loss"),
        ("data", "data"),
        ("consistency", "cons"),
        ("adv_g", "adv"),
        ("d_loss", "D"),
    )

    def __init__(self, cfg: TrainConfig, enabled: bool) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.bar: Any = None
        self.last = 0.0

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

        self.by_steps = self.cfg.steps is not None
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
        self.task = self.bar.add_task(
            desc, total=total, info="", completed=step if self.by_steps else int(elapsed)
        )

    def update(self, step: int, elapsed: float, row: dict[str, float]) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self.last < 0.25:
            return
        self.last = now
        info = f"step {step} " + " ".join(
            f"{short} {row[k]:.3g}" for k, short in self.KEYS if k in row
        )
        self.bar.update(self.task, completed=step if self.by_steps else int(elapsed), info=info)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _plot_losses(csv_path: Path, png_path: Path) -> None:
    """Loss curves of ``losses.csv`` as a PNG (matplotlib's Agg canvas, no global state)."""
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
        for key in ("loss", "data", "consistency", "adv_g", "d_loss"):
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
        with atomic_output(png_path, overwrite=True) as tmp:
            fig.savefig(tmp, format="png")
    except Exception as exc:  # a figure must never lose a finished run
        logger.warning("could not draw the loss curves: %s", exc)


# ---------------------------------------------------------------------------- entry point
def train(
    config: TrainConfig,
    volumes: Sequence[np.ndarray | torch.Tensor],
    run_dir: str | Path,
    *,
    voxel_size: float = 1.0,
    masks: Sequence[np.ndarray | torch.Tensor | None] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
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

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError, OutputError
        Unusable inputs or run folder.
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
    rd = Path(run_dir)
    # under torchrun: join the job (DDP over the ranks, only rank 0 writes); else a no-op
    with distributed.session(config.device) as ctx:
        trainer = _Trainer(
            config,
            volumes,
            rd,
            voxel_size=voxel_size,
            masks=masks,
            resume=resume,
            overwrite=overwrite,
            dist=ctx,
        )
        return trainer.run(progress, callback)
