"""Fixtures of the prediction tests: a wedged volume, a trained run, a saved checkpoint."""

import pytest
import torch

from cryogen.wedge import apply_missing_wedge
from predict.fakes import random_generator, save_model, wedged
from support import tiny_config


@pytest.fixture(scope="module")
def volume():
    """``(26, 30, 22)``, smooth, with the [-60, 60] wedge, far from mean 0 / std 1."""
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 26, 30, 22, generator=g), 5, 1, 2)[0, 0]
    return (apply_missing_wedge(v, -60, 60) * 40 + 100).numpy()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, volume):
    """A run of two IsoNet-style training steps on ``volume`` (voxel size 4 Å)."""
    from cryogen.train import train

    d = tmp_path_factory.mktemp("run")
    train(tiny_config(steps=2, method="isonet"), [volume], d, voxel_size=4.0, progress=False)
    return d


@pytest.fixture()
def checkpoint(tmp_path):
    """A saved checkpoint of a random tiny generator (tiles of 16 voxels)."""
    x = wedged((14, 24, 20))
    cfg = tiny_config()
    return save_model(
        tmp_path / "model.pt", cfg, random_generator(cfg), mean=float(x.mean()), std=float(x.std())
    )
