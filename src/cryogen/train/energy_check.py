"""The energy model's bias check: can E tell real crops from the fakes of a perfect
generator?

If it can, the energy term pushes even the exact answer away from itself: the truth is not
a fixed point of the game, and what E learns is the operator's artefact, not the fill.  E
(built, optimised and regularised as a run's ``config`` says) is trained alone, with the
run's adversarial loss, on real samples against fakes made exactly as CryoGEN makes them
from g's estimate, with one of two stand-ins for g:

``"truth"``
    a perfect generator, ``g(y) = x`` (the clean volume): a fair E is at chance (0.5);
``"identity"``
    a generator that fills nothing, ``g(y) = y``: a useful E tells these apart.

With half-sets (``others``, the second half of each measured subtomogram) the real samples
are crops of the first half, noisy as a run's are; the identity's estimate is then the
wedged truth (the half-sets' signal, without its noise: a denoiser that fills nothing), and
with ``fake_noise="halves"`` every fake gets the half-sets' noise at its crop,
``(y_a - y_b) / sqrt(2)`` through the same operator, as a run's fakes do.

Real samples and fakes follow the config: ``crop_operator`` and ``adv_wedge`` (the
operator on the crop or on the subtomogram), ``adv_source`` and ``adv_rotate`` (how the
fake is turned), ``real_wedge``, ``real_turns``, ``sigma``, ``instance_noise``,
``r1_weight`` and ``adv_margin``.  Real and fake come from independent random crops
(subtomogram, origin).  Accuracy is scored on fresh pairs: the fraction of real samples
scored above the threshold and of fakes below it (0 for ``bce`` and ``hinge``, the median
score for ``wgan-gp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from cryogen.model import build_energy
from cryogen.rotations import WEDGE_ROTATIONS, compose, rotate, rotate_box
from cryogen.train.config import TrainConfig
from cryogen.train.losses import discriminator_loss
from cryogen.train.methods.base import margin
from cryogen.train.methods.operators import CropWedge, resolve_operator
from cryogen.wedge import missing_wedge_mask, wedge_operator, wedge_symmetries

__all__ = ["BiasResult", "FakeKind", "PairSampler", "energy_bias"]

FakeKind = Literal["truth", "identity"]


@dataclass(frozen=True)
class BiasResult:
    """How well E told real samples from fakes on fresh pairs.

    Attributes
    ----------
    accuracy : float
        Fraction of correct calls over both sides (0.5: chance).
    score_real, score_fake : float
        Mean scores ``s = -E`` of the real samples and of the fakes.
    """

    accuracy: float
    score_real: float
    score_fake: float


class PairSampler:
    """Draws (real, fake) pairs of crops as a run with ``config`` makes them.

    Parameters
    ----------
    config
        The run's settings (crop edge, tilt range, operator, fakes' rotations, noise).
    truth, measured
        Clean and measured subtomograms ``(S, S, S)``, normalised like training data.
    fakes
        The generator that makes the fakes: ``"truth"`` or ``"identity"``.
    seed
        Seed of the draws.
    others
        With half-sets: the second half of each measured subtomogram (``measured`` holds
        the first), normalised alike.
    """

    def __init__(
        self,
        config: TrainConfig,
        truth: Sequence[torch.Tensor],
        measured: Sequence[torch.Tensor],
        fakes: FakeKind,
        seed: int = 0,
        others: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.cfg = config
        self.truth, self.measured, self.fakes = list(truth), list(measured), fakes
        if others is not None and len(others) != len(self.measured):
            raise ValueError("others must hold one second half per measured subtomogram")
        self.size, self.crop = int(measured[0].shape[0]), config.crop_size
        tilt = (config.tilt_min, config.tilt_max)
        self.hard = CropWedge.make(self.crop, tilt)
        # the volumes given are whole where they are the crop's size (prisms fed whole)
        kind, taper = resolve_operator(config, self.crop, self.size == self.crop)
        self.op = CropWedge.make(self.crop, tilt, kind, taper, config.wedge_guard)
        self.sub_mask = missing_wedge_mask((self.size,) * 3, *tilt)
        self.turns = wedge_symmetries(*tilt)  # those of real_turns
        self.sub_measured = [wedge_operator(v, self.sub_mask) for v in self.measured]
        # with half-sets: a noise sample of one half, (y_a - y_b) / sqrt(2), for the fakes
        # with fake_noise (wedged here, once, where the fakes are wedged on the
        # subtomogram), and the identity's estimate is the noiseless wedged truth
        self.noise: list[torch.Tensor] | None = None
        self.identity = self.measured
        if others is not None:
            self.identity = [wedge_operator(x, self.sub_mask) for x in self.truth]
            if config.fake_noise == "halves":
                pairs = zip(self.measured, others, strict=True)
                self.noise = [(a - b) * 0.5**0.5 for a, b in pairs]
                if config.adv_wedge == "subtomogram":
                    self.noise = [wedge_operator(n, self.sub_mask) for n in self.noise]
        self.rng = np.random.default_rng(seed)

    def _draw(self) -> tuple[int, tuple[int, int, int]]:
        i = int(self.rng.integers(len(self.measured)))
        z, y, x = (int(v) for v in self.rng.integers(0, self.size - self.crop + 1, size=3))
        return i, (z, y, x)

    def _rotation(self) -> int:
        return WEDGE_ROTATIONS[int(self.rng.integers(len(WEDGE_ROTATIONS)))]

    def _cut(self, v: torch.Tensor, o: Sequence[int]) -> torch.Tensor:
        c = self.crop
        return v[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]

    def real(self) -> torch.Tensor:
        """A real sample ``(1, 1, C', C', C')`` (``adv_margin`` cut, ``sigma`` noise)."""
        i, o = self._draw()
        if self.cfg.adv_wedge == "subtomogram":
            r = self._cut(self.sub_measured[i], o)
        else:
            y = self._cut(self.measured[i], o)
            r = self.op(y) if self.cfg.real_wedge else y
        if self.cfg.real_turns:
            r = rotate(r, self.turns[int(self.rng.integers(len(self.turns)))])
        if self.cfg.sigma > 0:
            r = r + self.cfg.sigma * self.u() * torch.randn(r.shape)
        return margin(r, self.cfg.adv_margin)[None, None]

    def fake(self) -> torch.Tensor:
        """A fake ``(1, 1, C', C', C')`` of the stand-in generator, made as the run's."""
        j, o = self._draw()
        est = (self.truth if self.fakes == "truth" else self.identity)[j]
        r = self._rotation()
        # adv_source consistency: the estimate in g's rotated frame, g(T_M(R t)), turned
        # again by R2 (adv_rotate); the identity's estimate there is its input T_M(R y)
        from_cons = self.cfg.adv_source == "consistency"
        r2 = self._rotation() if from_cons and self.cfg.adv_rotate else 0
        if self.cfg.adv_wedge == "subtomogram":
            turn = compose(r2, r)
            wedged = wedge_operator(rotate(est, turn), self.sub_mask)
            f = self._cut(wedged, rotate_box(o, self.crop, self.size, turn))
            if self.noise is not None:
                f = f + self._cut(self.noise[j], o)
        else:
            x_rot = rotate(self._cut(est, o), r)
            if from_cons and self.fakes == "identity":
                x_rot = self.hard(x_rot)
            f = self.op(rotate(x_rot, r2))
            if self.noise is not None:
                f = f + self.op(self._cut(self.noise[j], o))
        return margin(f, self.cfg.adv_margin)[None, None]

    def u(self) -> float:
        """A noise factor ``u ~ U(0, 1]``."""
        return 1.0 - float(self.rng.random())


def energy_bias(
    config: TrainConfig,
    truth: Sequence[torch.Tensor],
    measured: Sequence[torch.Tensor],
    fakes: FakeKind = "truth",
    *,
    steps: int = 1200,
    pairs: int = 200,
    seed: int = 0,
    others: Sequence[torch.Tensor] | None = None,
) -> BiasResult:
    """Train the config's E for ``steps`` updates (one real, one fake each) against the
    fakes of ``fakes`` and score it on ``pairs`` fresh pairs (see the module; ``others``:
    the second half-sets)."""
    cfg = config
    sampler = PairSampler(cfg, truth, measured, fakes, seed, others)
    torch.manual_seed(seed + 1)
    e = build_energy(cfg)
    opt = torch.optim.Adam(e.parameters(), lr=cfg.d_lr, betas=cfg.d_betas)
    for _ in range(steps):
        real, fake = sampler.real(), sampler.fake()
        if cfg.instance_noise > 0:
            level = cfg.instance_noise * sampler.u()
            real = real + level * torch.randn(real.shape)
            fake = fake + level * torch.randn(fake.shape)
        loss = torch.zeros(())
        if cfg.r1_weight > 0:
            real.requires_grad_(True)
        s_real = e(real).reshape(-1)
        if cfg.r1_weight > 0:
            (grad,) = torch.autograd.grad(s_real.sum(), real, create_graph=True)
            loss = 0.5 * cfg.r1_weight * grad.pow(2).sum()
        loss = loss + discriminator_loss(cfg.adv_loss, s_real, e(fake).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s_r = np.array([float(e(sampler.real())) for _ in range(pairs)])
        s_f = np.array([float(e(sampler.fake())) for _ in range(pairs)])
    threshold = float(np.median(np.concatenate([s_r, s_f]))) if cfg.adv_loss == "wgan-gp" else 0.0
    accuracy = 0.5 * float(np.mean(s_r > threshold)) + 0.5 * float(np.mean(s_f < threshold))
    return BiasResult(accuracy, float(s_r.mean()), float(s_f.mean()))
