"""The networks' settings: validation, and reading them back from a saved run configuration."""

import pytest
import torch
from pydantic import ValidationError

from cryogen.model import (
    EnergySettings,
    GeneratorSettings,
    build_energy,
    build_generator,
    generator_output,
)

SAVED_RUN = {  # a run's config.json: generator fields mixed with training fields
    "arch": "unetpp",
    "features": [4, 8],
    "norm": "instance",
    "upsample": "trilinear",
    "channels_last": False,
    "energy_features": [4, 4],
    "method": "cryogen",
    "steps": 100,
    "lr": 1e-4,
    "crop_size": 16,
    "sigma_g": 0.1,
}


def test_from_saved_ignores_the_training_fields():
    g = GeneratorSettings.from_saved(SAVED_RUN)
    expected = GeneratorSettings(
        arch="unetpp", features=(4, 8), norm="instance", upsample="trilinear", channels_last=False
    )
    assert g == expected
    assert g.features == (4, 8) and g.dropout == 0.0 and g.deep_supervision is False
    with pytest.raises(ValidationError):  # the class itself refuses unknown fields
        GeneratorSettings(**SAVED_RUN)
    assert GeneratorSettings.from_saved({}) == GeneratorSettings()


def test_from_saved_still_validates_the_generator_fields():
    with pytest.raises(ValidationError, match="deep_supervision"):
        GeneratorSettings.from_saved({"arch": "unet", "deep_supervision": True, "lr": 1.0})
    with pytest.raises(ValidationError, match="widths must be positive"):
        GeneratorSettings.from_saved({"features": [4, 0]})


def test_energy_settings_checks():
    assert EnergySettings(energy_fc_features=()).energy_fc_features == ()
    with pytest.raises(ValidationError, match="widths must be positive"):
        EnergySettings(energy_features=(4, -1))
    with pytest.raises(ValidationError, match="energy_fc_features must be positive"):
        EnergySettings(energy_fc_features=(0,))
    with pytest.raises(ValidationError):
        EnergySettings(energy_stride=5)


def test_built_networks_follow_the_settings():
    g = build_generator(GeneratorSettings(features=(4, 8)))
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        y = generator_output(g(x))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # residual with a zero-initialised head: the identity
    e = build_energy(EnergySettings(energy_features=(4, 4), energy_fc_features=(8,)))
    with torch.no_grad():
        assert e(x).shape == (1,)
    heads = [torch.ones(2), 3 * torch.ones(2)]
    torch.testing.assert_close(generator_output(heads), 2 * torch.ones(2))
