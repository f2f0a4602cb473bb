"""The validated configuration of a training run (``TrainConfig``) and its presets.

One pydantic model holds every setting; :meth:`TrainConfig.from_sources` fills it from a
preset, then a config file (JSON, TOML, or YAML when PyYAML is installed), then explicit
overrides (the CLI's flags), each level replacing the one before.  The resolved config is
saved as ``config.json`` in the run folder and inside every checkpoint.

Conventions
-----------
* Intensities are in units of the training data's standard deviation (the data are
  normalised to mean 0, std 1 before training), so noise scales such as ``sigma_g = 0.05``
  mean 5 % of the data's std.
* Every loss is a per-voxel mean (MSE), not a sum norm ``||.||^2``; ``data_weight`` plays
  the role of ``1 / (2 sigma_n^2)`` of the paper on that per-voxel scale.
* Schedules are functions of the training progress ``p`` in ``[0, 1]``: ``step / steps``
  with a step budget, ``elapsed / (60 minutes)`` with a time budget (the larger of the two
  when both are given).  The paper's "first epoch" of constant ``lambda`` is
  ``lambda_hold`` (a fraction of the run), because a time budget has no fixed epoch count.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from cryogen.errors import InputError
from cryogen.model.config import EnergySettings, GeneratorSettings

__all__ = ["TrainConfig", "PRESETS", "load_config_file"]

class TrainConfig(GeneratorSettings, EnergySettings):
    """Every setting of a training run, with bounds.  Defaults are the ``cpu`` preset."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # ------------------------------------------------------------------ what and where
    method: Literal["cryogen", "isonet"] = Field(
        "isonet",
        description="cryogen: Algorithm 1 of the paper; isonet: IsoNet-style baseline (cpu "
        "preset default: measured at least as good at 15 CPU minutes; paper "
        "preset: cryogen)",
    )
    preset: Literal["cpu", "paper"] = Field("cpu", description="preset the defaults came from")
    tilt_min: float = Field(-60.0, ge=-90.0, le=90.0, description="lowest tilt angle, degrees")
    tilt_max: float = Field(60.0, ge=-90.0, le=90.0, description="highest tilt angle, degrees")

    # ------------------------------------------------------------------ objective
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
    adv_margin: int = Field(
        4, ge=0, le=32, description="voxels cut from each face before E sees a crop"
    )
    sigma: float = Field(0.0, ge=0.0, description="noise on real samples, x U(0,1] per step")
    sigma_g: float = Field(0.05, ge=0.0, description="noise on g's input, x U(0,1] per step")
    sigma_h: float = Field(0.05, ge=0.0, description="noise in the consistency term, x U(0,1]")
    sigma_h_schedule: Literal["uniform", "rounds"] = Field(
        "rounds",
        description="sigma_h from the first step (paper: uniform), or scaled as IsoNet's "
        "noise (rounds): 0 for the first isonet_noise_start of the rounds, then rising to "
        "sigma_h in the last one",
    )
    instance_noise: float = Field(
        0.0, ge=0.0, description="noise added to both real and fake inputs of E, x U(0,1]"
    )
    d_lr: float = Field(4e-4, gt=0.0, le=1.0, description="learning rate of E")
    d_steps: int = Field(1, ge=1, le=10, description="E updates per generator update")
    d_betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas of E")
    r1_weight: float = Field(0.0, ge=0.0, description="R1 gradient penalty on real samples")
    gp_weight: float = Field(10.0, ge=0.0, description="gradient penalty weight of wgan-gp")

    # ------------------------------------------------------------------ optimisation
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
    n_subtomos: int = Field(10, ge=1, le=100_000, description="subtomograms per input volume")
    subtomo_size: int = Field(96, ge=8, le=1024, description="subtomogram edge, voxels")
    crop_size: int = Field(64, ge=8, le=1024, description="training crop edge, voxels")
    mask_threshold: float = Field(
        0.4, ge=0.0, le=1.0, description="least mask coverage of a subtomogram (with a mask)"
    )
    normalise: bool = Field(True, description="normalise the data to mean 0, std 1")

    # ------------------------------------------------------------------ budget and run
    steps: int | None = Field(None, ge=1, description="number of training steps")
    minutes: float | None = Field(15.0, gt=0.0, description="wall-clock budget, minutes")
    seed: int = Field(0, ge=0, description="random seed")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="mixed precision; auto: bf16 on CUDA and on AVX-512 CPUs, else float32",
    )
    threads: int | None = Field(1, ge=1, le=1024, description="CPU threads (None: torch default)")
    checkpoint_every: int = Field(1000, ge=1, description="steps between checkpoints")
    checkpoint_minutes: float | None = Field(
        1.0, gt=0.0, description="also checkpoint after this many minutes of training"
    )
    log_every: int = Field(1, ge=1, description="steps between rows of losses.csv")

    # ------------------------------------------------------------------ IsoNet baseline
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

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if not self.tilt_min < self.tilt_max:
            raise ValueError(
                f"tilt_min ({self.tilt_min}) must be smaller than tilt_max ({self.tilt_max})"
            )
        if self.crop_size > self.subtomo_size:
            raise ValueError(
                f"crop_size ({self.crop_size}) must not exceed subtomo_size ({self.subtomo_size})"
            )
        if 2 * self.data_margin >= self.crop_size:
            raise ValueError(
                f"data_margin ({self.data_margin}) too large for crop {self.crop_size}"
            )
        if 2 * self.adv_margin >= self.crop_size:
            raise ValueError(f"adv_margin ({self.adv_margin}) too large for crop {self.crop_size}")
        for name in ("adv_wedge", "data_wedge"):
            if getattr(self, name) == "subtomogram" and self.consistency_target != "refilled":
                raise ValueError(
                    f"{name} 'subtomogram' pastes the estimate into the refilled subtomogram: "
                    "it needs consistency_target 'refilled'"
                )
        if self.d_start > self.adv_start:
            raise ValueError(
                f"d_start ({self.d_start}) must not exceed adv_start ({self.adv_start}): "
                "E must learn before its term acts on g"
            )
        if self.steps is None and self.minutes is None:
            raise ValueError("give a budget: steps or minutes")
        for name in ("betas", "d_betas"):
            b = getattr(self, name)
            if not all(0.0 <= v < 1.0 for v in b):
                raise ValueError(f"{name} must lie in [0, 1), got {b}")
        return self

    # ---------------------------------------------------------------- helpers
    def lambda_at(self, progress: float) -> float:
        """Consistency weight: constant up to ``lambda_hold``, then linear to ``lambda_min``."""
        lam0, lam1 = self.consistency_weight, min(self.lambda_min, self.consistency_weight)
        if progress <= self.lambda_hold or self.lambda_hold >= 1.0:
            return lam0
        t = min(1.0, (progress - self.lambda_hold) / (1.0 - self.lambda_hold))
        return lam0 + (lam1 - lam0) * t

    def lr_factor(self, progress: float) -> float:
        """Learning-rate factor: linear warm-up, then linear decay to ``lr_final_factor``."""
        w = self.warmup_fraction
        if w > 0 and progress < w:
            return max(progress / w, 1e-3)
        t = min(1.0, (progress - w) / max(1e-12, 1.0 - w))
        return 1.0 + (self.lr_final_factor - 1.0) * t

    def adv_factor(self, progress: float) -> float:
        """Multiplier of ``adv_weight``: 0 before ``adv_start``, linear ramp to 1 after it."""
        if self.adv_weight == 0.0 or progress < self.adv_start:
            return 0.0
        if self.adv_ramp <= 0.0:
            return 1.0
        return min(1.0, (progress - self.adv_start) / self.adv_ramp)

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

    def sigma_h_at(self, progress: float) -> float:
        """Level of CryoGEN's consistency noise eps_h (before the per-step ``u``)."""
        if self.sigma_h_schedule == "uniform":
            return self.sigma_h
        return self.sigma_h * self.noise_ramp(self.round_at(progress))

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_sources(
        cls,
        preset: str | None = None,
        file: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
        exact: dict[str, Any] | None = None,
    ) -> TrainConfig:
        """Resolve a config: preset defaults < config file < ``overrides``.

        Parameters
        ----------
        preset
            ``"cpu"`` or ``"paper"``; ``None`` takes the file's ``preset`` entry, else ``"cpu"``.
        file
            JSON, TOML or YAML file with any subset of the fields.
        overrides
            Field values (e.g. the CLI's flags); ``None`` values are ignored.  Giving only one
            of ``steps`` / ``minutes`` (in the file or here) clears the other.
        exact
            Field values applied last, ``None`` included (e.g. ``--set checkpoint_minutes=null``).

        Raises
        ------
        InputError
            Unknown preset, unreadable file, unknown field or value out of bounds.
        """
        file_values = load_config_file(file) if file is not None else {}
        over = {k: v for k, v in (overrides or {}).items() if v is not None}
        over.update(exact or {})
        name = preset or over.get("preset") or file_values.get("preset") or "cpu"
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
        values: dict[str, Any] = dict(PRESETS[name])
        for layer in (file_values, over):
            if ("steps" in layer) != ("minutes" in layer):
                values.pop("steps", None)
                values.pop("minutes", None)
                values["steps" if "minutes" in layer else "minutes"] = None
            values.update(layer)
        values["preset"] = name
        return cls.validated(values, source=str(file) if file is not None else None)

    @classmethod
    def validated(cls, values: dict[str, Any], source: str | None = None) -> TrainConfig:
        """``cls(**values)`` with validation errors turned into one-line ``InputError``."""
        try:
            return cls(**values)
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
                parts.append(f"{loc}: {err.get('msg', 'invalid')}")
            where = f" in {source}" if source else ""
            raise InputError(f"invalid training config{where}: " + "; ".join(parts)) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config file into a dict: ``.json``, ``.toml``, or ``.yaml``/``.yml`` (PyYAML)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    suffix = p.suffix.lower()
    try:
        text = p.read_text()
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise InputError(
                    f"{p}: reading YAML needs PyYAML (pip install pyyaml); or use JSON or TOML"
                ) from None
            data = yaml.safe_load(text)
        else:
            raise InputError(f"{p}: config files must be .json, .toml or .yaml")
    except InputError:
        raise
    except Exception as exc:  # parse errors of any of the three formats
        raise InputError(f"{p}: cannot parse the config file: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: the config file must hold a mapping of field names to values")
    return data


# The ``cpu`` preset is the class defaults, chosen by measurement (docs/benchmarks.md; the
# early choices by 300-step runs on the sphere, the later ones by 15-minute runs):
# * Plain U-Net (8, 16, 32, 64, 128), 1.41 M parameters, no normalisation, zero-initialised
#   residual head, channels-last.  The U-Net++ of the same widths (1.64 M) learns more per
#   step, but a plain U-Net step costs 0.21 s against 0.79 s (64^3, one AVX-512 core, bf16;
#   benchmarks/step_time.py), and in 15 minutes on the prism set the plain U-Net was ahead
#   by 1.6 dB (IsoNet-style, 30.57 vs 29.00 dB).  ``--set arch='"unetpp"'`` restores it.
# * amp "auto": bf16 only where the CPU has AVX-512 (3.3x faster there; 14x slower on an
#   AVX2-only CPU, whose oneDNN has no fast bf16 convolutions).
# * Consistency target refilled as IsoNet does (the online crop-level target loses ~2 dB:
#   T_M on a 64^3 crop wraps around), one subtomogram every 10 steps in turn rather than
#   all of them per round, and lr 1e-3 (was 5e-4): at 15 min the IsoNet-style baseline
#   went 32.07 -> 33.74 dB (sphere) and 30.57 -> 31.36 (prism), CryoGEN 32.22 -> 32.83 and
#   30.79 -> 30.42.  The baseline now measures better than CryoGEN (docs/benchmarks.md).
# * g's gradient norm clipped to 1 (since the third 2026-12-01 session), for both methods.
#   g's norm is 2-10 after the first 200 steps, so nearly every step is rescaled: Adam then
#   sees gradients of one size, and a prism run that blew up at lr 1e-3 (24.05 dB) did not.
#   At 15 min: IsoNet-style prism 31.36 -> 34.43 dB, sphere (seed 1) 34.42 -> 34.84;
#   CryoGEN prism 30.42 -> 32.33 (33.00 with the ramp below), sphere (seed 1) 32.55 -> 34.22.
#   The sphere's seed 0 lost (IsoNet-style 33.74 -> 32.39).  Clipping at 5 (a quarter of
#   the steps): sphere 33.54, prism 32.45; over the two phantoms 1 measured best.
# * CryoGEN's eps_h on IsoNet's ramp (sigma_h_schedule="rounds": no noise for the first half
#   of the run, then rising to 0.05 u): prism 32.33 -> 33.00 dB with clipping, sphere
#   32.83 -> 33.41 without (seed 0).
# * lambda kept constant: with Adam a decaying lambda is a decaying learning rate for the
#   dominant term (25.5 -> 26.4 dB at 300 steps when the decay was removed).
# * Method isonet (since the second 2026-12-01 session): the IsoNet-style baseline measured
#   best then; with CryoGEN's fourth-session settings below CryoGEN is 0.25 dB behind on
#   average over five 15-minute pairs (sphere +1.70 / -0.35 / -0.89, prism -1.14 / -0.55),
#   so the default stays.  ``--method cryogen`` trains Algorithm 1.  Fifth session: with
#   E's draws on their own streams, CryoGEN without E and data term is the IsoNet-style
#   method bit for bit, and 3000-step pairs on shared draws put the energy term at -0.01,
#   +0.44 and -0.03 dB (prism sets 0-2; set 2 in the sixth session) and -0.18 and +0.11 dB
#   (sphere seeds 0, 1; a 100x weaker E: -0.17), for 1.18x the time per step.
# * CryoGEN without the data term (data_weight 0) and with the energy term on (adv_weight
#   3e-3) since the fourth 2026-12-01 session.  The data term compares T_M of a 64^3 crop
#   with T_M of the wedged crop; T_M of a crop is not a crop of T_M, so the true volume
#   itself scores 0.17 (prism) to 0.19 (sphere) against a consistency term of 0.06 late in
#   training (benchmarks/data_term_bias.py): it pulls g away from the truth, and with the
#   refilled target (T_M t = T_M y on the whole subtomogram) the consistency term already
#   carries the measured data.  Against the third session's CryoGEN (data term on, energy
#   off) at 15 min: sphere 32.22 -> 34.09 and 34.22 -> 34.49 dB (seeds 0, 1), prism
#   33.00 -> 33.29 and 29.85 -> 29.89.  The energy term's settings: spectral-normalised E
#   on wedged real crops, 4-voxel margin, from 30 % of the run ramped over 20 %.
#   E's wedge on the whole refilled subtomogram (adv_wedge "subtomogram", which makes the
#   truth's fakes real samples) measured lower in single runs (sphere 33.21, prism 32.61
#   dB, 8 % fewer steps) and stays an option.
# * E judges T_M(R x_hat), x_hat the consistency branch's estimate of the crop, instead of
#   T_M(R g(y)) from a second generator pass (adv_source="consistency"), every step: a step
#   then costs what an IsoNet step costs (0.5 s) instead of 0.8 s, and the sphere at 15 min
#   went from 31.22 dB (paper's extra pass, data and energy terms every 2nd step) to 32.08 dB.
#   With a second random rotation R2 (adv_rotate): E judges T_M(R2 R x_hat).  T_M(R x_hat)
#   is mostly what g was given (its input is T_M(R t + eps)), so E's gradient never
#   reached g's fill (tests/test_train.py::test_energy_model_sees_the_generators_fill).
# * The refill is one pass of g (refill_tta off): the mean over the rotations that keep the
#   wedge, which gains 0.2-0.7 dB at prediction (predict --tta), gave the IsoNet-style
#   method 33.21 vs 33.20 dB on the prism in 3000 steps, at 1.5x the time.
# ``paper`` follows the paper's appendix A.6 and, where the paper is silent, the struc2mapGAN
# networks it cites (GeneratorNestedUNet: widths 32-256, instance norm, trilinear upsampling;
# Discriminator: four stride-1 convs 32-256, instance norm, FC 100-25).
_CPU: dict[str, Any] = {}
_PAPER: dict[str, Any] = {
    "method": "cryogen",
    "arch": "unetpp",
    "features": (32, 64, 128, 256),
    "norm": "instance",
    "act": "prelu",
    "upsample": "trilinear",
    "energy_features": (32, 64, 128, 256),
    "energy_fc_features": (100, 25),
    "energy_norm": "instance",
    "energy_stride": 1,
    "energy_spectral_norm": False,
    "adv_weight": 1e-3,
    "data_weight": 1.0,
    "adv_start": 0.0,
    "adv_ramp": 0.0,
    "lambda_min": 0.0,
    "consistency_target": "generator",
    "gan_every": 1,
    "adv_source": "generator",
    "adv_rotate": False,
    "adv_wedge": "crop",
    "data_wedge": "crop",
    "consistency_forward": "separate",
    "real_wedge": False,
    "adv_margin": 0,
    "sigma": 0.05,
    "sigma_g": 0.05,
    "sigma_h": 0.05,
    "sigma_h_schedule": "uniform",
    "grad_clip": None,
    "lr": 1e-4,
    "d_lr": 1e-4,
    "rounds": 10,
    "refill_every": None,
    "d_betas": (0.9, 0.999),
    "batch_size": 1,
    "crop_size": 64,
    "subtomo_size": 96,
    "n_subtomos": 10,
    "amp": "auto",
    "threads": None,
    "steps": 20_000,
    "minutes": None,
    "checkpoint_every": 1000,
    "checkpoint_minutes": None,
    "log_every": 10,
}
PRESETS: dict[str, dict[str, Any]] = {"cpu": _CPU, "paper": _PAPER}

# Fields added after runs were saved without them, with the value that reproduces what
# those runs did: a saved config (config.json, a checkpoint) lacking one gets this value.
ADDED_FIELDS: dict[str, Any] = {
    "sigma_h_schedule": "uniform",
    "adv_wedge": "crop",
    "data_wedge": "crop",
    "d_start": 0.0,
    "refill_tta": False,
}


def saved_config_fill(saved: dict[str, Any]) -> dict[str, Any]:
    """The ``ADDED_FIELDS`` a saved config lacks, with the values its run used."""
    return {k: v for k, v in ADDED_FIELDS.items() if k not in saved}
