"""The optimisers of a run and their updates: Adam for ``g`` and ``E``, the loss scalers of
fp16, the learning-rate schedule, gradient clipping, and updates skipped for non-finite
gradients."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch

from cryogen.train.config import TrainConfig
from cryogen.train.networks import Networks

__all__ = ["MAX_SKIPPED_IN_A_ROW", "Diverged", "Optimisers"]

logger = logging.getLogger(__name__)

#: Updates skipped for non-finite gradients in a row before training stops as diverged.
MAX_SKIPPED_IN_A_ROW = 20


class Diverged(Exception):
    """Training cannot go on (a non-finite loss, or gradients non-finite too often); the
    loop checkpoints what it can and reports it."""


class Optimisers:
    """Adam for ``g`` (and ``E``), with their loss scalers and the update rules.

    Attributes
    ----------
    grad_norm : float
        ``g``'s gradient norm (before clipping) of the last update; the loop sets it to NaN
        before each step, so it stays NaN where the update was skipped.
    skipped : int
        Updates skipped for non-finite gradients so far.
    """

    def __init__(self, config: TrainConfig, networks: Networks) -> None:
        self.cfg = config
        self.g = torch.optim.Adam(networks.g.parameters(), lr=config.lr, betas=config.betas)
        self.g_params = networks.g.parameters
        self.e: torch.optim.Optimizer | None = None
        if networks.e is not None:
            self.e = torch.optim.Adam(networks.e.parameters(), lr=config.d_lr, betas=config.d_betas)
            self.e_params = networks.e.parameters
        fp16 = networks.amp == torch.float16
        device_type = networks.device.type
        self.scaler_g = torch.amp.GradScaler(device_type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(device_type, enabled=fp16)
        self.grad_norm = math.nan
        self.skipped = 0
        self.skipped_in_a_row = 0

    def set_lr(self, progress: float) -> float:
        """Both learning rates at ``progress`` of the schedule; returns g's."""
        f = self.cfg.lr_factor(progress)
        for grp in self.g.param_groups:
            grp["lr"] = self.cfg.lr * f
        if self.e is not None:
            for grp in self.e.param_groups:
                grp["lr"] = self.cfg.d_lr * f
        return self.cfg.lr * f

    def update_generator(self, loss: torch.Tensor, step: int) -> None:
        """One update of ``g`` on ``loss`` (clipped to ``grad_clip``; its norm recorded)."""
        self._update(loss, self.g, self.scaler_g, self.g_params(), self.cfg.grad_clip, step)

    def update_energy(self, loss: torch.Tensor, step: int) -> None:
        """One update of ``E`` on ``loss``."""
        assert self.e is not None
        self._update(loss, self.e, self.scaler_d, self.e_params(), None, step)

    def _update(
        self,
        loss: torch.Tensor,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        params: Iterable[torch.nn.Parameter],
        clip: float | None,
        step: int,
    ) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        with_grad = [q for q in params if q.grad is not None]
        # fp16's GradScaler skips such steps itself; otherwise one device sync for all
        # parameters, not one per tensor
        if (
            not scaler.is_enabled()
            and with_grad
            and not bool(torch.stack([torch.isfinite(q.grad).all() for q in with_grad]).all())  # type: ignore[arg-type]
        ):
            # A finite loss with a non-finite gradient (seen rarely in CPU bf16 convolutions
            # on tiny feature maps, not reproducible from the same tensors): skip the
            # update as fp16's GradScaler does, and stop if it persists.
            opt.zero_grad(set_to_none=True)
            self.skipped += 1
            self.skipped_in_a_row += 1
            log = logger.warning if self.skipped == 1 else logger.info
            log("step %d: non-finite gradient, update skipped", step + 1)
            if self.skipped_in_a_row > MAX_SKIPPED_IN_A_ROW:
                raise Diverged(f"non-finite gradients in {self.skipped_in_a_row} steps in a row")
            return
        self.skipped_in_a_row = 0
        is_g = opt is self.g
        if clip is not None or is_g:
            # g's gradient norm (before clipping) is logged: spikes show an unstable run
            scaler.unscale_(opt)
            norm = torch.nn.utils.clip_grad_norm_(with_grad, math.inf if clip is None else clip)
            if is_g:
                self.grad_norm = float(norm)
        scaler.step(opt)
        scaler.update()

    @staticmethod
    def check_finite(loss: torch.Tensor) -> None:
        """Raise :class:`Diverged` for a non-finite loss."""
        if not bool(torch.isfinite(loss.detach())):
            raise Diverged("non-finite loss")

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``opt_g``, ``opt_d``, ``scaler_g`` and ``scaler_d``."""
        return {
            "opt_g": self.g.state_dict(),
            "opt_d": self.e.state_dict() if self.e is not None else None,
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["opt_g"])
        if self.e is not None:
            self.e.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
