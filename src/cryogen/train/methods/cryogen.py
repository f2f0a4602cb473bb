"""CryoGEN, Algorithm 1 of the paper (``method="cryogen"``).

One step on a batch of crops ``y`` (all losses per-voxel means):

* ``x_g = g(y + eps_g)``; ``fake = T_M(R(x_g))`` with ``R`` one of the 20 wedge-changing cube
  rotations; ``real = y + eps`` (``T_M(y) + eps`` with ``real_wedge``, which gives real and
  fake crops the same crop-edge statistics).
* The energy model ``E`` outputs a score ``s = -E(x)`` (high = real).  It is updated with the
  chosen adversarial loss (``bce``: the paper's; ``hinge``; ``wgan-gp``), optionally with an
  R1 penalty and instance noise, on crops with ``adv_margin`` voxels cut from each face.
* ``g`` minimises ``adv_weight * adv(s(fake))`` (non-saturating for bce)
  ``+ data_weight * mse(T_M x_g, T_M y)`` (``T_M y`` rather than ``y``: a crop of a wedged
  volume is not exactly ``T_M``-invariant, and ``y`` would penalise the ideal generator)
  ``+ lambda * mse(R^-1 g(T_M(R(t) + eps_h)), t)``.  The consistency target ``t`` is
  ``g'(y)`` (paper), ``T_M y + (1 - T_M) g'(y)`` (``wedge_filled``: the measured Fourier
  data kept), or by default a crop of the refilled subtomograms (``refilled``, see
  :mod:`cryogen.train.refill`); ``g'`` is the generator without gradient.
* With ``adv_source="consistency"`` (the cpu preset) the consistency branch's estimate
  ``x_hat = R^-1 g(T_M(R t + eps_h))`` replaces ``x_g`` in the energy and data terms (no
  extra generator pass), and E judges ``T_M(R2 R x_hat)`` with a second random rotation
  ``R2`` (``adv_rotate``): ``T_M(R x_hat)`` alone is mostly the part of the estimate that g
  was given as input, and would leave g's fill unseen.
* ``T_M`` in the fake and the data term acts on the crop (the paper's, ``adv_wedge`` /
  ``data_wedge="crop"``), or on the whole subtomogram with the crop's estimate pasted into
  its refilled one (``"subtomogram"``): ``T_M`` of a crop is not a crop of ``T_M``, so on
  crops even the true volume's fake is told from real data and its data term is not zero.
  On the crop, real crops, fakes and both sides of the data term go through one operator,
  ``crop_operator`` (:mod:`cryogen.train.methods.operators`): the crop's hard ``T_M``, or a
  tapered crop seen through the measured region less a guard band, which removes that
  bias.
* With ``real_turns`` each real sample is turned by a random rotation that keeps its wedge
  (:func:`cryogen.wedge.wedge_symmetries`; exact: ``T_M R y = R T_M y``): E then meets each
  real volume in several poses, as it meets the fakes in many.
* ``sigma``, ``sigma_g``, ``sigma_h`` (and the instance noise) are multiplied by
  ``u ~ U(0, 1]`` drawn per step (appendix A.6).

With half-sets (Noise2Noise) the input side of every term is one half and the data side
the other: the consistency term's input is made of the input half's refilled crop and its
target is the other half's (:meth:`cryogen.train.refill.Refill.pair`); the data term is
``mse(T_M x_g, T_M y_b)``, the paper's ``||T_M g(y_a + eps) - y||^2`` with the target's noise
independent of the input's; E's real samples are half-set crops, and with
``fake_noise="halves"`` its fakes carry the half-sets' noise at the same place.

The energy model's and the data term's draws come from their own streams
(:mod:`cryogen.train.state`): with E and the data term off, this step trains the weights
of the IsoNet-style step bit for bit (with or without half-sets).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cryogen import distributed
from cryogen.rotations import compose, rotate, rotate_box
from cryogen.train.config import TrainConfig
from cryogen.train.losses import discriminator_loss, generator_adv_loss
from cryogen.train.methods.base import (
    Batch,
    RunParts,
    StepOutput,
    TrainingMethod,
    margin,
    rotate_batch,
)
from cryogen.train.methods.operators import CropOperator
from cryogen.wedge import wedge_operator, wedge_symmetries

__all__ = ["CryoGEN", "EnergyDraws", "FEW_WHOLE_VOLUMES"]

logger = logging.getLogger(__name__)

#: Below this many whole volumes (no crops) E learned the real ones by heart in the bias
#: check on whole prisms (accuracy on a perfect generator's fakes 0.97 with 10, 0.78 with
#: 30, 0.55 with 100; at most 0.6 passes).
FEW_WHOLE_VOLUMES = 100


@dataclass(frozen=True)
class EnergyDraws:
    """The step's noise factors ``u ~ U(0, 1]`` of the energy and data terms: on real
    samples (``sigma``), on g's input (``sigma_g``), and E's instance noise."""

    real: float
    input: float
    instance: float


class CryoGEN(TrainingMethod):
    """Algorithm 1: consistency, energy and data terms, and the energy model's update.

    Attributes
    ----------
    e_on : bool
        E learns and judges in this step (it has an energy term and ``d_start`` is past).
    """

    name = "cryogen"

    def __init__(self, parts: RunParts) -> None:
        super().__init__(parts)
        self.e_on = self.networks.e is not None
        # the operator of real crops, fakes and the data term on the crop
        self.crop_tm = CropOperator(
            self.cfg, self.wedges, self.device, whole=self.data.whole_volumes
        )
        self._real_subtomograms: torch.Tensor | None = None  # T_M of each, when needed
        self._warn_few_whole_volumes()

    def _warn_few_whole_volumes(self) -> None:
        """On whole volumes E sees the same few real samples at every step and can learn
        them by heart (docs/decisions.md, "One operator for real crops, fakes and the data
        term": the bias check on 10, 30 and 100 whole prisms).  Under torchrun only rank 0
        says it."""
        if not distributed.is_main():
            return
        n = len({v for v, *_ in self.data.origins})
        if self.e_on and self.data.whole_volumes and n < FEW_WHOLE_VOLUMES:
            turns = "" if self.cfg.real_turns else " (real_turns=true lessens it)"
            logger.warning(
                "the energy model sees %d whole volume(s) and no crops: with fewer than about "
                "%d it learns them by heart and tells even the true answer from them%s; "
                "check the result against --method isonet",
                n,
                FEW_WHOLE_VOLUMES,
                turns,
            )

    @staticmethod
    def uses_energy(config: TrainConfig) -> bool:
        return config.adv_weight > 0

    def describe(self) -> list[str]:
        cfg = self.cfg
        on_crop = (cfg.adv_weight > 0 and cfg.adv_wedge == "crop") or (
            cfg.data_weight > 0 and cfg.data_wedge == "crop"
        )
        lines = []
        if on_crop:
            lines.append(
                f"wedge operator of the energy model and data term: {self.crop_tm.describe()}"
            )
        if cfg.adv_weight > 0 and self.data.halves is not None:
            fakes = (
                "with the half-sets' noise"
                if cfg.fake_noise == "halves"
                else "without noise, against noisy real crops (fake_noise none)"
            )
            lines.append(f"energy model's fakes: {fakes}")
        return lines

    def before_batch(self, step: int, progress: float) -> dict[str, float]:
        if self.cfg.consistency_target != "refilled":
            return {}
        self.refill.update(step, progress)
        return {"round": float(self.refill.round)} if self.cfg.refill_every is None else {}

    def losses(self, batch: Batch, progress: float) -> StepOutput:
        cfg = self.cfg
        draws = EnergyDraws(*(self.streams.u(e=True) for _ in range(3)))
        lam = cfg.lambda_at(progress)
        adv_w = cfg.adv_weight * cfg.adv_factor(progress)
        row = {"lambda": lam, "adv_weight": adv_w}
        gan_step = batch.step % cfg.gan_every == 0
        # E learns (and makes fakes) from d_start on; before, the step is E-free
        self.e_on = self.networks.e is not None and progress >= cfg.d_start
        from_cons = cfg.adv_source == "consistency"
        total = torch.zeros((), device=self.device)
        xg = None
        if gan_step and not from_cons and (cfg.data_weight > 0 or self.e_on):
            # the paper's fake T_M(R g(y + eps_g)); the data term compares T_M g(y + eps_g)
            xg = est = self.generator_estimate(batch, draws.input)
            fake = self.fake(
                est, lambda: rotate_batch(est, batch.rotations), batch, batch.rotations
            )
            total = total + self.energy_and_data(est, fake, batch, draws, adv_w, row)
        if lam > 0 or (from_cons and gan_step):
            out, out_rot, cons = self.consistency(batch, xg, progress, row)
            total = total + lam * cons
            if from_cons and gan_step:
                fake = self.consistency_fake(out, out_rot, batch)
                total = total + self.energy_and_data(out, fake, batch, draws, adv_w, row)
        return StepOutput(total, row)

    # ------------------------------------------------------------------ generator terms
    def generator_estimate(self, batch: Batch, u: float) -> torch.Tensor:
        """``x_g = g(y + sigma_g u eps_g)`` with gradient ``(B, 1, C, C, C)``."""
        y, sigma_g = batch.y, self.cfg.sigma_g
        x_in = (
            y + sigma_g * u * self.streams.randn(y.shape, self.device, e=True) if sigma_g > 0 else y
        )
        return self.networks.generator(x_in)

    def consistency(
        self, batch: Batch, xg: torch.Tensor | None, progress: float, row: dict[str, float]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The consistency term ``mse(R^-1 g(T_M(R t + eps_h)), t)``; returns the estimate
        ``x_hat`` of the crop, ``g``'s output in the rotated frame, and the term."""
        cfg = self.cfg
        with torch.no_grad():
            source, target = self.consistency_pair(batch, xg)
            inp = rotate_batch(source, batch.rotations)
            sigma_h = cfg.sigma_h_at(progress)
            if sigma_h > 0:
                inp = inp + sigma_h * batch.u * self.streams.randn(inp.shape, self.device)
            row["noise"] = sigma_h * batch.u
            inp = batch.tm(inp)
        out_rot = self.networks.generator(inp)  # estimate of R t, in the rotated frame
        out = rotate_batch(out_rot, batch.rotations, inverse=True)
        cons = F.mse_loss(out, target)
        row["consistency"] = float(cons.detach())
        return out, out_rot, cons

    @torch.no_grad()
    def consistency_pair(
        self, batch: Batch, xg: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the consistency term's input is made of, and its target ``t``
        (``consistency_target``); the same crops without half-sets."""
        cfg = self.cfg
        if cfg.consistency_target == "refilled":
            return self.refill.pair(batch)
        if cfg.consistency_forward == "reuse" and xg is not None:
            xp = xg.detach()
        else:
            xp = self.networks.generator(batch.y)
        if cfg.consistency_target == "generator":
            return xp, xp
        source = batch.tm(batch.y - xp) + xp
        if batch.other is None:
            return source, source
        return source, batch.tm(batch.other - xp) + xp

    # ------------------------------------------------------------------ energy and data
    def consistency_fake(
        self, out: torch.Tensor, out_rot: torch.Tensor, batch: Batch
    ) -> torch.Tensor | None:
        """E's fake made of the consistency branch's estimate ``out`` (``adv_source``
        ``"consistency"``).  ``T_M(R out) = T_M(out_rot)`` would show E mostly what g was
        given (its input is ``T_M`` of the same frame); a second rotation ``R2`` brings g's
        fill into E's view."""
        if self.cfg.adv_rotate and self.e_on:
            r2 = self.streams.rotations(len(batch), e=True)
            fake_rots = [compose(a, r) for a, r in zip(r2, batch.rotations, strict=True)]
            return self.fake(out, lambda: rotate_batch(out_rot, r2), batch, fake_rots)
        return self.fake(out, lambda: out_rot, batch, batch.rotations)

    def fake(
        self,
        est: torch.Tensor,
        est_rot: Callable[[], torch.Tensor],
        batch: Batch,
        rots: Sequence[int],
    ) -> torch.Tensor | None:
        """E's fake for the estimate ``est`` of the crops (with gradient); None without E.

        ``adv_wedge="crop"``: ``crop_operator`` on ``est_rot()``, the estimate rotated by
        ``rots`` (the paper's: ``T_M``).  ``"subtomogram"``: each crop's estimate is pasted
        into its refilled subtomogram, which is rotated by ``rots``, given the
        subtomogram's wedge, and cut where the crop went; with the true volume this fake is
        a crop of wedged data, as the real samples are, while ``T_M`` of a crop mixes in
        the crop's missing wedge.
        """
        if not self.e_on:
            return None
        if self.cfg.adv_wedge == "crop":
            return self.crop_tm(est_rot(), batch)
        return self.wedged_in_subtomogram(est, batch, rots)

    def real(self, batch: Batch) -> torch.Tensor:
        """E's real samples for the batch, wedged like the fakes with ``real_wedge``, each
        turned by a random rotation that keeps its wedge with ``real_turns``."""
        if not self.cfg.real_wedge:
            real = batch.y
        elif self.cfg.adv_wedge == "crop":
            real = self.crop_tm(batch.y, batch)
        else:
            real = self.wedged_subtomogram_crops(batch)
        if not self.cfg.real_turns:
            return real
        turns = [
            self.streams.pick(wedge_symmetries(*self.wedges.range_of(i)), e=True)
            for i in batch.index
        ]
        return rotate_batch(real, turns)

    def with_data_noise(self, fake: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``fake`` plus the half-sets' noise at the batch's crops (``fake_noise``
        ``"halves"``): ``(y_input - y_other) / sqrt(2)`` has the noise of one half (its
        variance, its wedge, its correlations) and none of the signal; through the fakes'
        operator it gives the fakes the real crops' noise, so E cannot tell them apart by
        the noise alone.  Unchanged without half-sets or with ``"none"``."""
        if self.cfg.fake_noise == "none" or batch.other is None:
            return fake
        if self.cfg.adv_wedge == "crop":
            noise = self.crop_tm(batch.y - batch.other, batch)
        else:
            noise = self.wedged_subtomogram_crops(batch)
            noise = noise - self.wedged_subtomogram_crops(batch, other=True)
        return fake + noise * math.sqrt(0.5)

    def energy_and_data(
        self,
        est: torch.Tensor,
        fake: torch.Tensor | None,
        batch: Batch,
        draws: EnergyDraws,
        adv_w: float,
        row: dict[str, float],
    ) -> torch.Tensor:
        """Update E on (real, fake) and return g's weighted energy and data terms.

        ``est`` is the generator's estimate of the crops ``batch.y`` (with gradient) and
        ``fake`` E's fake made of it (:meth:`fake`; None without E).
        """
        cfg = self.cfg
        total = torch.zeros((), device=self.device)
        if self.e_on:
            assert fake is not None
            fake = self.with_data_noise(fake, batch)
            real = self.real(batch)
            if cfg.sigma > 0:
                noise = self.streams.randn(real.shape, self.device, e=True)
                real = real + cfg.sigma * draws.real * noise
            row.update(self.update_energy(real, fake, draws.instance, batch.step))
            if adv_w > 0:
                f = fake
                if cfg.instance_noise > 0:
                    noise = self.streams.randn(f.shape, self.device, e=True)
                    f = f + cfg.instance_noise * draws.instance * noise
                adv = generator_adv_loss(
                    cfg.adv_loss, self.networks.energy(margin(f, cfg.adv_margin))
                )
                total = total + adv_w * adv
                row["adv_g"] = float(adv.detach())
        if cfg.data_weight > 0:
            data = self.data_term(est, batch)
            total = total + cfg.data_weight * data
            row["data"] = float(data.detach())
        return total

    def data_term(self, est: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``mse(T_M est, T_M y)`` with ``T_M`` on the crop (``data_wedge="crop"``, the
        paper's, through ``crop_operator``: with the hard ``T_M`` the truth scores > 0, as
        the crop spreads its missing wedge into the measured band; tapered, about 0) or on
        the whole subtomogram (zero at the truth)."""
        if self.cfg.data_wedge == "crop":
            measured = batch.y if batch.other is None else batch.other
            diff = self.crop_tm(est - measured, batch)
        else:
            identity = [0] * len(batch)  # CUBE_ROTATIONS[0] is the identity
            pasted = self.wedged_in_subtomogram(est, batch, identity)
            diff = pasted - self.wedged_subtomogram_crops(batch, other=True)
        return margin(diff, self.cfg.data_margin).pow(2).mean()

    def update_energy(
        self, real: torch.Tensor, fake: torch.Tensor, u_instance: float, step: int
    ) -> dict[str, float]:
        """``d_steps`` updates of E on ``(real, fake)``; E's logged values."""
        cfg, nets = self.cfg, self.networks
        assert nets.e is not None
        nets.e.requires_grad_(True)
        stats: dict[str, float] = {}
        for _ in range(cfg.d_steps):
            r, f = real.detach(), fake.detach()
            if cfg.instance_noise > 0:
                r = r + cfg.instance_noise * u_instance * self.streams.randn(
                    r.shape, self.device, e=True
                )
                f = f + cfg.instance_noise * u_instance * self.streams.randn(
                    f.shape, self.device, e=True
                )
            r, f = margin(r, cfg.adv_margin), margin(f, cfg.adv_margin)
            penalty = torch.zeros((), device=self.device)
            if cfg.r1_weight > 0:
                r = r.requires_grad_(True)
                s_real = nets.energy(r, amp=False)
                (grad,) = torch.autograd.grad(s_real.sum(), r, create_graph=True)
                penalty = penalty + 0.5 * cfg.r1_weight * grad.pow(2).flatten(1).sum(1).mean()
            else:
                s_real = nets.energy(r)
            s_fake = nets.energy(f)
            loss = discriminator_loss(cfg.adv_loss, s_real, s_fake)
            if cfg.adv_loss == "wgan-gp" and cfg.gp_weight > 0:
                penalty = penalty + cfg.gp_weight * self.gradient_penalty(r, f)
            self.optimisers.update_energy(loss + penalty, step)
            stats = {
                "d_loss": float(loss.detach()),
                "d_real": float(s_real.detach().mean()),
                "d_fake": float(s_fake.detach().mean()),
                "penalty": float(penalty.detach()),
            }
        nets.e.requires_grad_(False)
        return stats

    def gradient_penalty(self, r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """wgan-gp's ``(|grad E(x)| - 1)^2`` at random points between reals and fakes."""
        alpha = torch.rand((r.shape[0], 1, 1, 1, 1), generator=self.streams.e_noise)
        x_hat = alpha.to(self.device) * r.detach() + (1 - alpha.to(self.device)) * f
        x_hat.requires_grad_(True)
        s_hat = self.networks.energy(x_hat, amp=False)
        (grad,) = torch.autograd.grad(s_hat.sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()

    # ------------------------------------------------------------------ whole subtomograms
    def wedged_in_subtomogram(
        self, est: torch.Tensor, batch: Batch, rots: Sequence[int]
    ) -> torch.Tensor:
        """Each crop's estimate pasted into its refilled subtomogram, which is rotated by
        ``rots``, given the subtomogram's wedge ``T_M``, and cut where the crop went
        (gradient through ``est`` only; with half-sets, into the input half's)."""
        filled = self.refill.filled
        assert filled is not None
        s, c = self.data.size, self.data.crop_size
        out = []
        for b, (i, o, r) in enumerate(zip(batch.index, batch.offsets, rots, strict=True)):
            base = filled[i] if batch.halves is None else filled[batch.halves[b], i]
            inside = base[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]
            pad = (o[2], s - c - o[2], o[1], s - c - o[1], o[0], s - c - o[0])
            full = base + F.pad(est[b, 0].float() - inside, pad)  # gradient inside only
            mask = self.wedges.subtomogram_for(i)
            wedged = wedge_operator(rotate(full, r)[None, None], mask)[0, 0]
            z, y, x = rotate_box(o, c, s, r)
            out.append(wedged[z : z + c, y : y + c, x : x + c])
        return torch.stack(out)[:, None]

    def wedged_subtomogram_crops(self, batch: Batch, other: bool = False) -> torch.Tensor:
        """Crops of ``T_M`` of the measured subtomograms (each wedged once, then kept): with
        half-sets, of each sample's input half, or with ``other`` of the other half."""
        if self._real_subtomograms is None:
            source = self.data.subtomos if self.data.halves is None else self.data.halves
            flat = source.reshape(-1, *source.shape[-3:])
            n = len(self.data)  # flat holds the subtomograms, once per half
            wedged = torch.stack(
                [
                    wedge_operator(v[None, None], self.wedges.subtomogram_for(k % n))[0, 0]
                    for k, v in enumerate(flat)
                ]
            )
            self._real_subtomograms = wedged.reshape(source.shape)
        if batch.halves is None:
            return self.data.crop(self._real_subtomograms, batch.index, batch.offsets)
        halves = [1 - h for h in batch.halves] if other else batch.halves
        return self.data.half_crops(self._real_subtomograms, halves, batch.index, batch.offsets)
