"""The IsoNet-style baseline (``method="isonet"``).

Rounds (IsoNet's iterations) split the budget evenly, and the subtomograms are refilled
(:mod:`cryogen.train.refill`): ``x_i = T_M y_i + (1 - T_M) g(y_i)`` (round 0: ``x_i = y_i``).
Training pairs are ``(T_M(R(x) + n), R(x))`` for crops ``x`` of the filled subtomograms,
with noise ``n`` whose level rises over the last rounds; the loss is the MSE.  With
half-sets the pair is ``(T_M(R(x_a) + n), R(x_b))``: input from one half, target the other
(:meth:`cryogen.train.refill.Refill.pair`), so the network learns the signal, not the noise.
"""

from __future__ import annotations

import torch.nn.functional as F

from cryogen.train.methods.base import Batch, StepOutput, TrainingMethod, rotate_batch

__all__ = ["IsoNet"]


class IsoNet(TrainingMethod):
    """The IsoNet-style step: denoise and fill rotated, wedged crops of refilled data."""

    name = "isonet"

    def before_batch(self, step: int, progress: float) -> dict[str, float]:
        self.refill.update(step, progress)
        return {}

    def losses(self, batch: Batch, progress: float) -> StepOutput:
        cfg = self.cfg
        x, t = self.refill.pair(batch)
        source = rotate_batch(x, batch.rotations)
        target = source if t is x else rotate_batch(t, batch.rotations)
        level = cfg.isonet_noise(self.refill.round) * (batch.u if cfg.isonet_noise_uniform else 1.0)
        inp = (
            source + level * self.streams.randn(source.shape, self.device) if level > 0 else source
        )
        loss = F.mse_loss(self.networks.generator(batch.tm(inp)), target)
        row = {
            "consistency": float(loss.detach()),
            "round": float(self.refill.round),
            "noise": level,
        }
        return StepOutput(loss, row)
