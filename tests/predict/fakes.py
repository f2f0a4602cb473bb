"""Volumes and models for the prediction tests (imported as ``predict.fakes``).

Volumes are smooth random fields with a missing wedge, far from mean 0 / std 1 so that a
forgotten normalisation shows; models are built in memory (no training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cryogen.model import LoadedModel, Normalisation, build_generator, save_checkpoint
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask
from support import tiny_config


def wedged(shape, seed=0, scale=40.0, offset=100.0):
    """A smooth random volume with the [-60, 60] wedge removed, far from mean 0 / std 1."""
    g = torch.Generator().manual_seed(seed)
    v = torch.nn.functional.pad(torch.rand(1, 1, *shape, generator=g), (1,) * 6, mode="replicate")
    v = torch.nn.functional.avg_pool3d(v, 3, 1, 0)[0, 0]
    return (apply_missing_wedge(v, -60, 60) * scale + offset).numpy().astype(np.float32)


def random_generator(cfg, seed=0):
    """The tiny U-Net++ with every weight random (the zero-initialised head made non-zero), so
    that its output depends on the orientation and position of the voxels in a tile."""
    g = build_generator(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return g.eval()


class Constant(nn.Module):
    def forward(self, x):
        return torch.full_like(x, 0.75)


def make_model(generator, *, sigma_g=0.05, mean=0.0, std=1.0, tilt=(-60.0, 60.0), crop=16):
    cfg = tiny_config(sigma_g=sigma_g, tilt_min=tilt[0], tilt_max=tilt[1])
    return LoadedModel(
        generator=generator.eval(),
        config=cfg,
        normalisation=Normalisation(mean, std),
        method="cryogen",
        tilt_min=tilt[0],
        tilt_max=tilt[1],
        voxel_size=1.0,
        crop_size=crop,
        step=0,
        path=Path("memory"),
        device=torch.device("cpu"),
        amp=None,
        sigma_g=sigma_g,
    )


def save_model(
    path, cfg, generator, *, mean, std, method="cryogen", tilt=(-60.0, 60.0), voxel=2.5,
    half_sets=False,
):  # fmt: skip
    """A generator checkpoint as ``cryogen train`` writes it (``half_sets``: trained on them)."""
    save_checkpoint(
        path,
        {
            "kind": "generator",
            "config": cfg.model_dump(mode="json"),
            "method": method,
            "tilt_min": tilt[0],
            "tilt_max": tilt[1],
            "voxel_size": voxel,
            "normalisation": {"mean": float(mean), "std": float(std)},
            "crop_size": cfg.crop_size,
            "step": 0,
            "elapsed_s": 0.0,
            "generator": generator.state_dict(),
            "half_sets": half_sets,
        },
    )
    return path


def identity_checkpoint(path, volume, tilt=(-60.0, 60.0), half_sets=False):
    """A checkpoint holding the untrained generator (zero-initialised residual head = identity)."""
    cfg = tiny_config(tilt_min=tilt[0], tilt_max=tilt[1])
    return save_model(
        path,
        cfg,
        build_generator(cfg),
        mean=float(volume.mean()),
        std=float(volume.std()),
        tilt=tilt,
        voxel=1.0,
        half_sets=half_sets,
    )


def measured_error(x, out, tilt=(-60.0, 60.0)):
    """Largest change of the measured Fourier coefficients, relative to the largest one."""
    m = missing_wedge_mask(x.shape, *tilt, dtype=torch.float64).bool()
    fx = torch.fft.rfftn(torch.as_tensor(x, dtype=torch.float64))
    fo = torch.fft.rfftn(torch.as_tensor(np.asarray(out), dtype=torch.float64))
    return float((fx - fo)[m].abs().max() / fx.abs().max())
