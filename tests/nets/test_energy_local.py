"""The local energy model: a score per position of a small receptive field, averaged, that
cannot see where its input ends; the global one keeps its layout."""

import pytest
import torch

from cryogen.model import build_energy
from cryogen.model.config import EnergySettings
from cryogen.nets.energy import EnergyModel, LocalEnergyModel, local_strides


def test_local_energy_model_averages_scores_of_a_small_receptive_field():
    torch.manual_seed(0)
    e = LocalEnergyModel(features=(4, 4, 8, 8), fc_features=(8,))
    assert e.strides == [1, 2, 2, 1] and e.receptive_field == 17 and e.min_size == 17
    x = torch.randn(2, 1, 25, 25, 25)
    scores, maps = e(x), e.score_map(x)
    assert scores.shape == (2,) and maps.shape == (2, 1, 3, 3, 3)
    assert torch.allclose(scores, maps.flatten(1).mean(1))
    # a voxel at a corner is seen by the corner position only: no position sees past it
    y = x.clone()
    y[:, :, 0, 0, 0] += 10.0
    changed = (e.score_map(y) - maps).abs().flatten(2) > 0
    assert changed[:, 0, 0].all() and not changed[:, 0, 1:].any()


def test_local_energy_model_refuses_inputs_smaller_than_its_receptive_field():
    e = LocalEnergyModel(features=(4, 4, 8, 8))
    with pytest.raises(ValueError, match="at least 17 voxels"):
        e(torch.zeros(1, 1, 16, 20, 20))
    assert local_strides(1) == [1] and local_strides(2, 3) == [1, 3]


def test_the_energy_setting_chooses_the_head():
    settings = dict(energy_features=(4, 4, 8, 8), energy_fc_features=(8,))
    assert isinstance(build_energy(EnergySettings(**settings)), EnergyModel)
    local = build_energy(EnergySettings(energy_arch="local", energy_norm="instance", **settings))
    assert isinstance(local, LocalEnergyModel)
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in local.modules())
    # the global model's parameters keep their names (checkpoints of earlier runs load)
    names = list(build_energy(EnergySettings(**settings)).state_dict())
    assert names[:2] == ["convs.0.bias", "convs.0.parametrizations.weight.original"]
