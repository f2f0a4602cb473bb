"""Loading a trained generator for prediction, and the checks of its tilt range."""

import pytest
import torch

from cryogen.errors import InputError
from cryogen.model import (
    LAST,
    GeneratorSettings,
    LoadedModel,
    Normalisation,
    build_generator,
    compute_normalisation,
    load_model,
    save_checkpoint,
)

SETTINGS = GeneratorSettings(features=(4, 8), channels_last=False)


def write_run(run_dir, **changes):
    """A run folder whose last.pt holds a tiny trained-looking generator."""
    torch.manual_seed(0)
    gen = build_generator(SETTINGS)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = {
        "kind": "full",
        "config": {**SETTINGS.model_dump(), "method": "cryogen", "sigma_g": 0.05, "steps": 9},
        "method": "cryogen",
        "tilt_min": -54.0,
        "tilt_max": 62.0,
        "voxel_size": 10.8,
        "normalisation": {"mean": 1.5, "std": 2.0},
        "crop_size": 16,
        "step": 9,
        "generator": gen.state_dict(),
        **changes,
    }
    save_checkpoint(run_dir / LAST, state)
    return gen


def test_load_model_round_trip(tmp_path):
    gen = write_run(tmp_path)
    model = load_model(tmp_path, "cpu", amp="off")
    assert isinstance(model, LoadedModel)
    assert model.config == SETTINGS and model.method == "cryogen" and model.step == 9
    assert (model.tilt_min, model.tilt_max, model.voxel_size) == (-54.0, 62.0, 10.8)
    assert model.normalisation == Normalisation(1.5, 2.0) and model.crop_size == 16
    assert model.sigma_g == 0.05 and model.training["steps"] == 9
    assert model.path == tmp_path / LAST and model.amp is None
    assert not model.generator.training
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.generator(x), gen.eval()(x))


def test_check_tilt_range_messages(tmp_path):
    write_run(tmp_path)
    model = load_model(tmp_path, "cpu", amp="off")
    model.check_tilt_range(-54.0, 62.0)
    model.check_tilt_range(None, None)
    model.check_tilt_range(-54.0000001, None)
    with pytest.raises(InputError) as e:
        model.check_tilt_range(-60.0, None)
    assert str(e.value) == (
        f"{tmp_path / LAST}: trained for tilt range [-54, 62] deg, not the requested "
        "[-60, 62]; train a model for this tilt range"
    )
    with pytest.raises(InputError) as e:
        model.check_tilt_range(-60.0, 60.0, "tomograms.star, row 2")
    assert str(e.value) == (
        f"tomograms.star, row 2: tilt range [-60, 60] deg, but {tmp_path / LAST} was "
        "trained for [-54, 62]"
    )
    with pytest.raises(InputError, match="not the requested"):
        load_model(tmp_path, "cpu", tilt_min=-60.0, amp="off")


def test_load_model_refuses_what_does_not_fit(tmp_path):
    write_run(tmp_path)
    with pytest.raises(InputError, match="trained with method 'cryogen', not the requested"):
        load_model(tmp_path, "cpu", method="isonet", amp="off")
    (tmp_path / "a").mkdir()
    write_run(tmp_path / "a", tilt_max="steep")
    with pytest.raises(InputError, match="incomplete checkpoint"):
        load_model(tmp_path / "a", "cpu", amp="off")
    (tmp_path / "b").mkdir()
    other = build_generator(GeneratorSettings(features=(4, 16), channels_last=False))
    write_run(tmp_path / "b", generator=other.state_dict())
    with pytest.raises(InputError, match="weights do not fit the generator"):
        load_model(tmp_path / "b", "cpu", amp="off")


def test_normalisation():
    a = torch.arange(40.0).reshape(2, 4, 5)
    norm = compute_normalisation([a, a.numpy() + 40])
    full = torch.cat([a.flatten(), a.flatten() + 40]).double()
    assert norm.mean == pytest.approx(float(full.mean()))
    assert norm.std == pytest.approx(float(full.std(unbiased=False)))
    torch.testing.assert_close(norm.invert(norm.apply(a)), a)
    assert Normalisation.from_dict(norm.to_dict()) == norm
    assert compute_normalisation([a], enabled=False) == Normalisation(0.0, 1.0)
    with pytest.raises(InputError, match="constant"):
        compute_normalisation([torch.ones(3, 3, 3)])
