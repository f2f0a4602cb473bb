"""Fixtures of the training tests: a tiny wedge-corrupted volume, tiny configs, and
readers of a run folder."""

import csv

import pytest
import torch

import support
from cryogen.model import load_checkpoint
from cryogen.wedge import apply_missing_wedge

#: What the training tests change in ``support.TINY_TRAIN``: three 24^3 subtomograms of
#: the 28^3 volume, and CryoGEN's energy and data terms on from the first step (the cpu
#: preset delays the first and turns the second off), so that a few steps cover them.
TRAIN_TESTS = dict(
    subtomo_size=24,
    n_subtomos=3,
    adv_start=0.0,
    adv_ramp=0.0,
    adv_weight=0.01,
    data_weight=1.0,
    checkpoint_every=1000,
)


@pytest.fixture(scope="session")
def volume():
    """A wedge-corrupted 28^3 volume: two boxes and a ball."""
    z, y, x = torch.meshgrid(*(torch.arange(28.0),) * 3, indexing="ij")
    v = ((z - 14) ** 2 + (y - 12) ** 2 + (x - 15) ** 2 < 25).float()
    v[4:10, 6:20, 18:24] = 1.0
    v[18:24, 3:8, 3:12] = 0.5
    return apply_missing_wedge(v, -60, 60).numpy()


@pytest.fixture(scope="session")
def tiny():
    """``tiny(**settings)``: ``support.tiny_config`` with ``TRAIN_TESTS``, then ``settings``
    (a ``None`` among them is applied as ``None``, as ``--set key=null`` does)."""

    def make(**settings):
        cfg = support.tiny_config(**{**TRAIN_TESTS, **settings})
        nones = {k: None for k, v in settings.items() if v is None}
        return cfg.validated({**cfg.model_dump(), **nones}) if nones else cfg

    return make


class RunFiles:
    """Reading a run folder back."""

    @staticmethod
    def rows(run_dir):
        """``losses.csv`` as dicts."""
        with open(run_dir / "losses.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    @staticmethod
    def loss_rows(run_dir):
        """``losses.csv`` without the wall-clock column."""
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in RunFiles.rows(run_dir)]

    @staticmethod
    def weights(path, key="generator"):
        return load_checkpoint(path)[key]

    @staticmethod
    def assert_same_state(a, b):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="session")
def run_files():
    return RunFiles
