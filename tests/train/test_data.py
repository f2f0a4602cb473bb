"""Training data: subtomogram origins under a mask, normalisation, crops and the
sampler's state."""

import math

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.model import compute_normalisation
from cryogen.train import SubtomoDataset
from cryogen.train.data import sample_origins


def test_origins_respect_the_mask():
    mask = np.zeros((40, 40, 40), np.uint8)
    mask[20:, 20:, 20:] = 1
    rng = np.random.default_rng(0)
    origins = sample_origins(mask.shape, 16, 20, rng, mask=mask, threshold=0.5)
    assert len(origins) == 20
    for z, y, x in origins:
        assert mask[z : z + 16, y : y + 16, x : x + 16].mean() >= 0.5
    with pytest.raises(InputError, match="mask coverage"):
        sample_origins(mask.shape, 16, 5, rng, mask=np.zeros_like(mask), max_tries=10)


def test_dataset_normalises_and_crops(volume):
    ds = SubtomoDataset(
        [volume, volume[:, :, ::-1]], subtomo_size=20, n_subtomos=4, crop_size=12, seed=3
    )
    norm = compute_normalisation([volume])
    assert math.isclose(ds.normalisation.mean, norm.mean, rel_tol=1e-9)
    assert math.isclose(ds.normalisation.std, float(volume.std()), rel_tol=1e-6)
    assert ds.subtomos.shape == (8, 20, 20, 20) and len(ds.origins) == 8
    i, z, y, x = ds.origins[5]
    src = [volume, volume[:, :, ::-1]][i][z : z + 20, y : y + 20, x : x + 20]
    torch.testing.assert_close(ds.subtomos[5], norm.apply(torch.as_tensor(src.copy())))
    batch = ds.sample(3)
    assert batch.shape == (3, 1, 12, 12, 12)
    # the sampler's state round-trips
    state = ds.state_dict()
    a = ds.sample(2)
    ds.load_state_dict(state)
    torch.testing.assert_close(ds.sample(2), a)
    with pytest.raises(InputError, match="smaller than the training crop"):
        SubtomoDataset([volume[:10]], subtomo_size=20, n_subtomos=1, crop_size=12)


def test_too_little_mask_coverage_is_reported_in_parameter_names():
    """The message names the settings to change (``mask_threshold``, ``n_subtomos``,
    ``subtomo_size``); the command line turns registered names into its flags."""
    vol = np.random.default_rng(0).normal(size=(24, 24, 24)).astype(np.float32)
    with pytest.raises(InputError) as err:
        SubtomoDataset(
            [vol],
            subtomo_size=16,
            n_subtomos=4,
            crop_size=8,
            masks=[np.zeros_like(vol, dtype=np.uint8)],
            mask_threshold=0.4,
        )
    text = str(err.value)
    assert "found only 0 of the 4 subtomograms" in text and "\n" not in text
    for name in ("mask_threshold (to 0.2", "n_subtomos", "subtomo_size"):
        assert name in text
    assert "--" not in text
