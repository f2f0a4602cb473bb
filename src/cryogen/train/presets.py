"""Named starting points of a training configuration.

``cpu`` is the class defaults of :class:`~cryogen.train.TrainConfig`: settings chosen by
measurement for a 15-minute run on one CPU core (the measurements are summarised in
``docs/decisions.md``).  ``paper`` follows appendix A.6 of the paper and, where the paper
is silent, the struc2mapGAN networks it cites (a nested U-Net of widths 32-256 with
instance norm and trilinear upsampling; a discriminator of four stride-1 convolutions
32-256 with instance norm and fully connected layers 100-25).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PAPER: dict[str, Any] = {
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
    "crop_operator": "hard",
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

#: preset name -> the field values it sets (the rest keep the class defaults).
PRESETS: dict[str, dict[str, Any]] = {"cpu": {}, "paper": PAPER}
