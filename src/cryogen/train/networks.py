"""The networks of a run, the generator ``g`` and the energy model ``E``, and their
forward passes (precision, memory layout, and DDP where a backward pass follows)."""

from __future__ import annotations

import torch
from torch import nn

from cryogen import distributed
from cryogen.device import autocast
from cryogen.model import build_energy, build_generator, generator_output, memory_format
from cryogen.train.config import TrainConfig

__all__ = ["Networks"]


class Networks:
    """``g`` and, when the method uses it, ``E``, on the training device.

    Construction draws from the global torch RNG: ``g`` from the run's seed as it stands,
    ``E`` after re-seeding with ``seed + 1`` (so that E's initial weights do not depend on
    g's size).

    Parameters
    ----------
    config
        The run's settings.
    device, amp
        Where the networks run and the autocast precision (``None``: float32).
    with_energy
        Build ``E`` (CryoGEN with an energy term).
    """

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        amp: torch.dtype | None,
        *,
        with_energy: bool,
    ) -> None:
        self.device = device
        self.amp = amp
        self.fmt = memory_format(config)
        g = build_generator(config)
        self.g: nn.Module = g.to(device, memory_format=self.fmt)  # type: ignore[call-overload]
        torch.manual_seed(config.seed + 1)
        self.e: nn.Module | None = None
        if with_energy:
            e = build_energy(config)
            self.e = e.to(device, memory_format=self.fmt)  # type: ignore[call-overload]
        self.g_ddp: nn.Module | None = None
        self.e_ddp: nn.Module | None = None

    def wrap_ddp(self, dist: distributed.DistContext) -> None:
        """Under DDP: the wrappers that all-reduce the gradients (``None`` alone)."""
        self.g_ddp = distributed.wrap_ddp(self.g, dist)
        self.e_ddp = distributed.wrap_ddp(self.e, dist) if self.e is not None else None

    def start_training(self) -> None:
        """Training mode; E's parameters need gradients only inside E's own update."""
        self.g.train()
        if self.e is not None:
            self.e.train()
            self.e.requires_grad_(False)

    def generator(self, x: torch.Tensor) -> torch.Tensor:
        """``g(x)`` in float32 (the mean of deep-supervision heads)."""
        # DDP only where a backward pass follows; g' (no grad) is the plain module
        g = self.g_ddp if self.g_ddp is not None and torch.is_grad_enabled() else self.g
        with autocast(self.device, self.amp):
            out = g(x.contiguous(memory_format=self.fmt))
        return generator_output(out).float().contiguous()

    def energy(self, x: torch.Tensor, *, amp: bool = True) -> torch.Tensor:
        """The scores ``s = -E(x)`` ``(B,)`` in float32; ``amp=False``: full precision
        (for the gradient penalties' double backward)."""
        assert self.e is not None
        # DDP only in E's own update (its parameters require grad); g's energy term uses E
        # as a fixed function, whose parameter gradients are neither needed nor synchronised
        e = self.e
        if self.e_ddp is not None and torch.is_grad_enabled():
            e = self.e_ddp if next(self.e.parameters()).requires_grad else self.e
        with autocast(self.device, self.amp if amp else None):
            s = e(x.contiguous(memory_format=self.fmt))
        return s.float().reshape(-1)

    def finite(self) -> bool:
        """True when every parameter of ``g`` (and ``E``) is finite."""
        nets = [self.g] + ([self.e] if self.e is not None else [])
        return all(bool(torch.isfinite(q).all()) for n in nets for q in n.parameters())
