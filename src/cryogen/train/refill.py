"""Refilled targets: each subtomogram ``y_i`` with its missing wedge filled by the
generator, ``x_i = T_M y_i + (1 - T_M) g'(y_i)`` (IsoNet's refill).

The IsoNet-style method trains on crops of them, and CryoGEN's ``refilled`` consistency
target is a crop of them.  ``g'`` is the generator at the time of the refill: all
subtomograms are refilled at the start of each of the ``rounds`` rounds (IsoNet), or with
``refill_every`` one of them every that many steps, in turn (a rolling refill; the round
index then only sets the noise).  Whole subtomograms avoid the wrap-around of ``T_M`` on
small crops, for one forward pass per subtomogram and refill.

With half-sets (Noise2Noise) each half is refilled with the same fill, the generator's
estimate from the subtomogram of their mean: ``x_{h,i} = T_M y_{h,i} + (1 - T_M) g'(y_i)``.
A step's input is made from one half and its target is the other
(:meth:`Refill.pair`): where the target half was measured it is that half's data, with
noise independent of the input's; in the missing wedge it is the denoised estimate, never
a raw half.  With two identical halves this is the refill without half-sets.
"""

from __future__ import annotations

from typing import Any

import torch

from cryogen.rotations import rotation_mean
from cryogen.train.config import TrainConfig
from cryogen.train.data import SubtomoDataset
from cryogen.train.networks import Networks
from cryogen.train.wedges import Wedges
from cryogen.wedge import wedge_operator, wedge_symmetries

__all__ = ["Refill"]


class Refill:
    """The refilled subtomograms of a run and their schedule.

    Parameters
    ----------
    config, data, networks
        The run's settings, subtomograms and generator.
    wedges
        The run's masks of ``T_M`` (each subtomogram's tilt range).

    Attributes
    ----------
    filled : torch.Tensor or None
        ``(N, S, S, S)`` refilled subtomograms (``(2, N, S, S, S)``, one set per half, with
        half-sets); ``None`` before the first step.
    round : int
        The current round (-1 before the first step).
    next : int
        The subtomogram the rolling refill refreshes next.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: SubtomoDataset,
        networks: Networks,
        wedges: Wedges,
    ) -> None:
        self.cfg = config
        self.data = data
        self.networks = networks
        self.wedges = wedges
        self.filled: torch.Tensor | None = None
        self.round = -1
        self.next = 0

    def update(self, step: int, progress: float) -> None:
        """Keep the targets current before step ``step + 1`` at ``progress``: all of them
        when a new round starts, or (rolling) one every ``refill_every`` steps."""
        cfg = self.cfg
        if self.filled is None:  # g' = identity before training
            source = self.data.subtomos if self.data.halves is None else self.data.halves
            self.filled = source.clone()
            self.next = 0
            self.round = 0
        rnd = cfg.round_at(progress)
        if cfg.refill_every is None:
            if rnd > self.round:
                self.refill_all()
        elif step > 0 and step % cfg.refill_every == 0:
            self.refill_one(self.next)
            self.next = (self.next + 1) % len(self.data)
        self.round = max(self.round, rnd)

    def refill_all(self) -> None:
        """Refill every subtomogram (the start of a round)."""
        for i in range(len(self.data)):
            self.refill_one(i)

    @torch.no_grad()
    def refill_one(self, i: int) -> None:
        """``x_i = T_M y_i + (1 - T_M) g(y_i)`` for subtomogram ``i``; with ``refill_tta``
        ``g(y_i)`` is the mean of ``R^-1 g(R y_i)`` over the rotations that keep the wedge
        (the subtomograms are cubes)."""
        assert self.filled is not None
        g = self.networks.g
        was_training = g.training
        g.eval()
        y = self.data.subtomos[i][None, None]
        cfg = self.cfg
        rots = wedge_symmetries(*self.wedges.range_of(i)) if cfg.refill_tta else (0,)
        gy = rotation_mean(self._estimate, y, rots)
        mask = self.wedges.subtomogram_for(i)
        if self.data.halves is None:
            self.filled[i] = (wedge_operator(y - gy, mask) + gy)[0, 0]
        else:
            for h in (0, 1):
                yh = self.data.halves[h, i][None, None]
                self.filled[h, i] = (wedge_operator(yh - gy, mask) + gy)[0, 0]
        g.train(was_training)

    def _estimate(self, v: torch.Tensor) -> torch.Tensor:
        """``g(v)`` of a subtomogram ``(1, 1, S, S, S)``: tiled at the crop size when it is
        more than twice the crops g trains on."""
        crop = self.data.crop_size
        if self.data.size > 2 * crop:
            from cryogen.tiling import sliding_window_inference

            return sliding_window_inference(
                v, self.networks.generator, roi_size=crop, overlap=crop // 4
            )
        return self.networks.generator(v)

    def crops(
        self,
        index: list[int],
        offsets: list[tuple[int, int, int]],
        halves: list[int] | None = None,
    ) -> torch.Tensor:
        """Crops ``(B, 1, C, C, C)`` of the refilled subtomograms (with half-sets, sample
        ``b`` from half ``halves[b]``)."""
        assert self.filled is not None
        if halves is None:
            return self.data.crop(self.filled, index, offsets)
        return self.data.half_crops(self.filled, halves, index, offsets)

    def pair(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's refilled input crops and the crops its loss compares against: the
        same crops without half-sets; with them, the input's half and the other half."""
        x = self.crops(batch.index, batch.offsets, batch.halves)
        if batch.halves is None:
            return x, x
        return x, self.crops(batch.index, batch.offsets, [1 - h for h in batch.halves])

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``isonet`` entry."""
        return {
            "round": self.round,
            "next": self.next,
            "filled": None if self.filled is None else self.filled.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = int(state.get("round", -1))
        self.next = int(state.get("next", 0))
        filled = state.get("filled")
        self.filled = None if filled is None else filled.to(self.networks.device)
