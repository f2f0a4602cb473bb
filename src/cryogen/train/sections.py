"""The sections of a training configuration: one pydantic model per concern, each with
its bounds, its own checks and the schedules its fields drive.

:class:`~cryogen.train.config.TrainConfig` inherits them all (and the networks' sections
of :mod:`cryogen.model.config`), so a config's fields stay flat.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ConsistencySettings",
    "DataSettings",
    "IsoNetSettings",
    "MethodSettings",
    "ObjectiveSettings",
    "OptimisationSettings",
    "RunSettings",
]

_SECTION = ConfigDict(extra="forbid", validate_assignment=True)


class MethodSettings(BaseModel):
    """Which algorithm trains, and the tilt range of the data."""

    model_config = _SECTION

    method: Literal["cryogen", "isonet"] = Field(
        "isonet",
        description="cryogen: Algorithm 1 of the paper; isonet: IsoNet-style baseline (cpu "
        "preset default: measured at least as good at 15 CPU minutes; paper "
        "preset: cryogen)",
    )
    preset: Literal["cpu", "paper"] = Field("cpu", description="preset the defaults came from")
    tilt_min: float = Field(-60.0, ge=-90.0, le=90.0, description="lowest tilt angle, degrees")
    tilt_max: float = Field(60.0, ge=-90.0, le=90.0, description="highest tilt angle, degrees")

    @model_validator(mode="after")
    def _check_tilt_range(self) -> MethodSettings:
        if not self.tilt_min < self.tilt_max:
            raise ValueError(
                f"tilt_min ({self.tilt_min}) must be smaller than tilt_max ({self.tilt_max})"
            )
        return self


class ObjectiveSettings(BaseModel):
    """CryoGEN's energy (adversarial) term, its data term, and the energy model's training."""

    model_config = _SECTION

    adv_loss: Literal["bce", "hinge", "wgan-gp"] = Field(
        "bce", description="adversarial loss (paper: binary cross-entropy)"
    )
    adv_weight: float = Field(
        3e-3,
        ge=0.0,
        description="weight of the energy (adversarial) term (cpu preset 3e-3, from adv_start; "
        "paper 1e-3); 0 turns it off",
    )
    adv_start: float = Field(
        0.3, ge=0.0, le=1.0, description="progress fraction at which the energy term starts"
    )
    adv_ramp: float = Field(
        0.2, ge=0.0, le=1.0, description="progress fraction over which its weight ramps to full"
    )
    d_start: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="progress fraction at which E starts learning (at most adv_start; "
        "before it E is neither updated nor evaluated, which saves its cost per step)",
    )
    data_weight: float = Field(
        0.0,
        ge=0.0,
        description="weight of the data term, 1/(2 sigma_n^2) on per-voxel MSE (cpu preset 0: "
        "with refilled targets the consistency term carries the measured data, and T_M on a "
        "crop is biased: the truth scores 0.17-0.19; paper 1)",
    )
    adv_source: Literal["generator", "consistency"] = Field(
        "consistency",
        description="what E judges and the data term scores: T_M R g(y + eps_g) from its own "
        "forward pass (paper), or T_M R x_hat with x_hat = R^-1 g(T_M(R t + eps_h)) the "
        "consistency branch's estimate of the whole crop (no extra generator pass)",
    )
    adv_rotate: bool = Field(
        True,
        description="with adv_source consistency: E judges T_M R2 x_hat_rot, R2 a second "
        "random wedge-changing rotation, so that the part of the estimate g filled in (its "
        "missing wedge) is seen; without it E mostly sees what g was given",
    )
    adv_wedge: Literal["crop", "subtomogram"] = Field(
        "crop",
        description="where E's fakes (and real_wedge's reals) get the wedge T_M: on the "
        "training crop (paper), or on the whole subtomogram, the estimate pasted into the "
        "refilled one (consistency_target refilled); T_M of a crop differs from a crop of "
        "T_M, so on crops even the true volume's fakes are told from real data",
    )
    data_wedge: Literal["crop", "subtomogram"] = Field(
        "crop",
        description="where the data term applies T_M: on the training crop (paper; the true "
        "volume does not score zero there), or on the whole subtomogram with the estimate "
        "pasted into the refilled one (zero at the truth; consistency_target refilled)",
    )
    crop_operator: Literal["auto", "hard", "tapered"] = Field(
        "auto",
        description="the T_M that E's real and fake crops and the data term's both sides go "
        "through where adv_wedge / data_wedge is crop: hard, T_M on the crop's grid (paper; "
        "biased on crops smaller than the volume: even the truth's fakes are told from real "
        "crops), or tapered, T_M' of the crop times a cosine taper of crop_taper voxels, M' "
        "the measured region less a guard band of wedge_guard Fourier pixels (measured "
        "unbiased); auto: hard where every crop is a whole volume (exact there), else "
        "tapered with a taper of at most a quarter of the crop edge",
    )
    crop_taper: int = Field(
        16,
        ge=0,
        le=256,
        description="crop_operator tapered: taper width at each face, voxels (auto: at most "
        "a quarter of the crop edge)",
    )
    wedge_guard: float = Field(
        3.0,
        ge=0.0,
        le=32.0,
        description="crop_operator tapered: guard band along the missing wedge, Fourier pixels",
    )
    gan_every: int = Field(
        1,
        ge=1,
        le=100,
        description="compute the data and energy terms (and update E) every k-th step only",
    )
    data_margin: int = Field(
        0, ge=0, le=32, description="voxels cut from each face before the data term"
    )
    real_wedge: bool = Field(
        True, description="apply T_M to real crops too (same crop-edge statistics as fakes)"
    )
    real_turns: bool = Field(
        False,
        description="turn each of E's real samples by a random rotation that keeps its wedge "
        "(the identity and the 180-degree turns of cryogen.wedge.wedge_symmetries: exact, "
        "T_M R y = R T_M y), so that E meets each real volume in several poses and learns a "
        "small set of whole volumes less by heart",
    )
    adv_margin: int = Field(
        4, ge=0, le=32, description="voxels cut from each face before E sees a crop"
    )
    fake_noise: Literal["none", "halves"] = Field(
        "halves",
        description="with half-sets: add to each of E's fakes the half-sets' noise at the same "
        "place, (y_input - y_other)/sqrt(2) through the same operator, so that fakes carry "
        "the data's noise as the real half-set crops do and E judges the signal (passes the "
        "bias check); none: clean fakes against noisy real crops, which E tells apart by "
        "the noise alone, even the truth's (no effect without half-sets)",
    )
    sigma: float = Field(0.0, ge=0.0, description="noise on real samples, x U(0,1] per step")
    sigma_g: float = Field(0.05, ge=0.0, description="noise on g's input, x U(0,1] per step")
    instance_noise: float = Field(
        0.0, ge=0.0, description="noise added to both real and fake inputs of E, x U(0,1]"
    )
    d_lr: float = Field(4e-4, gt=0.0, le=1.0, description="learning rate of E")
    d_steps: int = Field(1, ge=1, le=10, description="E updates per generator update")
    d_betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas of E")
    r1_weight: float = Field(0.0, ge=0.0, description="R1 gradient penalty on real samples")
    gp_weight: float = Field(10.0, ge=0.0, description="gradient penalty weight of wgan-gp")

    @model_validator(mode="after")
    def _check_objective(self) -> ObjectiveSettings:
        if self.d_start > self.adv_start:
            raise ValueError(
                f"d_start ({self.d_start}) must not exceed adv_start ({self.adv_start}): "
                "E must learn before its term acts on g"
            )
        _check_betas("d_betas", self.d_betas)
        if self.crop_operator == "tapered" and not self.real_wedge:
            raise ValueError(
                "crop_operator 'tapered' puts real and fake crops through the same operator: "
                "it needs real_wedge true"
            )
        return self

    def adv_factor(self, progress: float) -> float:
        """Multiplier of ``adv_weight``: 0 before ``adv_start``, linear ramp to 1 after it."""
        if self.adv_weight == 0.0 or progress < self.adv_start:
            return 0.0
        if self.adv_ramp <= 0.0:
            return 1.0
        return min(1.0, (progress - self.adv_start) / self.adv_ramp)


class ConsistencySettings(BaseModel):
    """The consistency term: its weight schedule, its target, its noise, and the refill of
    whole subtomograms that the ``refilled`` target (and the IsoNet-style method) use."""

    model_config = _SECTION

    consistency_weight: float = Field(
        1.0, ge=0.0, description="lambda, weight of the consistency term at the start"
    )
    lambda_min: float = Field(
        1.0,
        ge=0.0,
        description="floor that lambda decays to (cpu preset: 1 = no decay, measured better)",
    )
    lambda_hold: float = Field(
        0.1, ge=0.0, le=1.0, description="progress fraction with constant lambda ('first epoch')"
    )
    consistency_target: Literal["generator", "wedge_filled", "refilled"] = Field(
        "refilled",
        description="target t of the consistency term: g'(y) on the crop (paper), "
        "T_M y + (1 - T_M) g'(y) on the crop, or the same on whole subtomograms refreshed "
        "in rounds or one at a time (a slowly updated g', no crop-edge wrap-around)",
    )
    consistency_forward: Literal["separate", "reuse"] = Field(
        "separate",
        description="g'(y) from its own no-grad forward pass (paper) or reuse g(y + eps_g)",
    )
    sigma_h: float = Field(0.05, ge=0.0, description="noise in the consistency term, x U(0,1]")
    sigma_h_schedule: Literal["uniform", "rounds"] = Field(
        "rounds",
        description="sigma_h from the first step (paper: uniform), or scaled as IsoNet's "
        "noise (rounds): 0 for the first isonet_noise_start of the rounds, then rising to "
        "sigma_h in the last one",
    )
    refill_every: int | None = Field(
        10,
        ge=1,
        description="refilled targets (cryogen's refilled consistency target and the isonet "
        "method): refresh one subtomogram every this many steps, in turn (rolling); None: "
        "refresh all of them at the start of each of the `rounds` rounds, as IsoNet",
    )
    refill_tta: bool = Field(
        False,
        description="refill with the rotation average of predict --tta: g's estimate of a "
        "subtomogram's wedge is the mean of R^-1 g(R y) over the rotations that keep the "
        "wedge (4 for a symmetric tilt range, 2 otherwise; that many passes per refill)",
    )

    def lambda_at(self, progress: float) -> float:
        """Consistency weight: constant up to ``lambda_hold``, then linear to ``lambda_min``."""
        lam0, lam1 = self.consistency_weight, min(self.lambda_min, self.consistency_weight)
        if progress <= self.lambda_hold or self.lambda_hold >= 1.0:
            return lam0
        t = min(1.0, (progress - self.lambda_hold) / (1.0 - self.lambda_hold))
        return lam0 + (lam1 - lam0) * t


class OptimisationSettings(BaseModel):
    """The generator's optimiser and learning-rate schedule, and the batch."""

    model_config = _SECTION

    lr: float = Field(1e-3, gt=0.0, le=1.0, description="generator learning rate (peak)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas of g")
    warmup_fraction: float = Field(0.1, ge=0.0, le=0.5, description="linear warm-up fraction")
    lr_final_factor: float = Field(
        0.0, ge=0.0, le=1.0, description="lr at the end of the linear decay, as a factor of lr"
    )
    grad_clip: float | None = Field(
        1.0,
        gt=0.0,
        description="clip g's gradient norm to this (cpu preset 1: g's norm is 2-10, so every "
        "step is rescaled, which stopped rare blow-ups at lr 1e-3); None: no clipping (paper)",
    )
    batch_size: int = Field(1, ge=1, le=256, description="crops per step")

    @model_validator(mode="after")
    def _check_optimisation(self) -> OptimisationSettings:
        _check_betas("betas", self.betas)
        return self

    def lr_factor(self, progress: float) -> float:
        """Learning-rate factor: linear warm-up, then linear decay to ``lr_final_factor``."""
        w = self.warmup_fraction
        if w > 0 and progress < w:
            return max(progress / w, 1e-3)
        t = min(1.0, (progress - w) / max(1e-12, 1.0 - w))
        return 1.0 + (self.lr_final_factor - 1.0) * t


class DataSettings(BaseModel):
    """Subtomograms cut from the input volumes and the training crops."""

    model_config = _SECTION

    n_subtomos: int = Field(10, ge=1, le=100_000, description="subtomograms per input volume")
    subtomo_size: int = Field(96, ge=8, le=1024, description="subtomogram edge, voxels")
    crop_size: int = Field(64, ge=8, le=1024, description="training crop edge, voxels")
    mask_threshold: float = Field(
        0.4, ge=0.0, le=1.0, description="least mask coverage of a subtomogram (with a mask)"
    )
    normalise: bool = Field(True, description="normalise the data to mean 0, std 1")

    @model_validator(mode="after")
    def _check_data(self) -> DataSettings:
        if self.crop_size > self.subtomo_size:
            raise ValueError(
                f"crop_size ({self.crop_size}) must not exceed subtomo_size ({self.subtomo_size})"
            )
        return self


class RunSettings(BaseModel):
    """The budget, the seed, where it runs, and how often it checkpoints and logs."""

    model_config = _SECTION

    steps: int | None = Field(None, ge=1, description="number of training steps")
    minutes: float | None = Field(15.0, gt=0.0, description="wall-clock budget, minutes")
    seed: int = Field(0, ge=0, description="random seed")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="mixed precision; auto: bf16 on CUDA and where the CPU runs it faster",
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads (None: all available, or OMP_NUM_THREADS)"
    )
    checkpoint_every: int = Field(1000, ge=1, description="steps between checkpoints")
    checkpoint_minutes: float | None = Field(
        1.0, gt=0.0, description="also checkpoint after this many minutes of training"
    )
    log_every: int = Field(1, ge=1, description="steps between rows of losses.csv")

    @model_validator(mode="after")
    def _check_budget(self) -> RunSettings:
        if self.steps is None and self.minutes is None:
            raise ValueError("give a budget: steps or minutes")
        return self

    def progress_at(self, step: int, elapsed_s: float) -> float:
        """Training progress in ``[0, 1]``: the larger of the step and time fractions."""
        p = 0.0
        if self.steps is not None:
            p = max(p, step / self.steps)
        if self.minutes is not None:
            p = max(p, elapsed_s / (60.0 * self.minutes))
        return min(1.0, p)

    def budget_spent(self, step: int, elapsed_s: float) -> bool:
        """True once ``step`` reaches ``steps`` or ``elapsed_s`` reaches ``minutes``."""
        if self.steps is not None and step >= self.steps:
            return True
        return self.minutes is not None and elapsed_s >= 60.0 * self.minutes


class IsoNetSettings(BaseModel):
    """The rounds of refills (IsoNet's iterations) and IsoNet's rising noise."""

    model_config = _SECTION

    rounds: int = Field(
        10,
        ge=1,
        le=1000,
        description="refill rounds splitting the budget (IsoNet's iterations); also CryoGEN's "
        "refilled target when refill_every is None",
    )
    isonet_noise_max: float = Field(
        0.05, ge=0.0, description="noise level of the last round (IsoNet's noise_level)"
    )
    isonet_noise_start: float = Field(
        0.5, ge=0.0, le=1.0, description="fraction of the rounds before noise is added"
    )
    isonet_noise_uniform: bool = Field(
        True, description="multiply the round's noise level by u ~ U(0,1] per step"
    )

    def round_at(self, progress: float) -> int:
        """Index of the round (of ``rounds``) that ``progress`` falls in."""
        return min(int(progress * self.rounds), self.rounds - 1)

    def noise_ramp(self, round_index: int) -> float:
        """IsoNet's noise factor of a round: 0 before ``isonet_noise_start``, then rising
        linearly to 1 in the last round."""
        start = int(math.floor(self.isonet_noise_start * self.rounds))
        if round_index < start:
            return 0.0
        return (round_index - start + 1) / max(1, self.rounds - start)

    def isonet_noise(self, round_index: int) -> float:
        """Noise level of an IsoNet round: 0 before the start, then rising to the maximum."""
        return self.isonet_noise_max * self.noise_ramp(round_index)


def _check_betas(name: str, betas: tuple[float, float]) -> None:
    if not all(0.0 <= v < 1.0 for v in betas):
        raise ValueError(f"{name} must lie in [0, 1), got {betas}")
