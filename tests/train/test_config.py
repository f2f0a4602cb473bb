"""The training configuration: its layers (preset, file, overrides), bounds, schedules,
sections, and the flat JSON that runs and checkpoints save."""

import json
import math

import pytest

from cryogen.errors import InputError
from cryogen.train import PRESETS, RESUMABLE_FIELDS, TrainConfig, saved_config_fill
from cryogen.train.sections import (
    ConsistencySettings,
    DataSettings,
    IsoNetSettings,
    MethodSettings,
    ObjectiveSettings,
    OptimisationSettings,
    RunSettings,
)


def test_config_layers_preset_file_overrides(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lr": 2e-4, "batch_size": 2, "steps": 50}))
    cfg = TrainConfig.from_sources("paper", f, {"batch_size": 3, "seed": None})
    assert cfg.preset == "paper"
    assert cfg.features == PRESETS["paper"]["features"]  # from the preset
    # the method and refill schedule each preset measures or specifies best
    assert (cfg.method, cfg.refill_every) == ("cryogen", None)
    assert (cfg.grad_clip, cfg.sigma_h_schedule) == (None, "uniform")  # the paper's
    cpu = TrainConfig.from_sources("cpu")
    assert (cpu.method, cpu.refill_every) == ("isonet", 10)
    assert (cpu.grad_clip, cpu.sigma_h_schedule) == (1.0, "rounds")  # measured
    assert (cpu.adv_weight, cpu.data_weight, cpu.adv_wedge) == (3e-3, 0.0, "crop")  # measured
    assert (cfg.adv_weight, cfg.data_weight, cfg.adv_wedge) == (1e-3, 1.0, "crop")  # the paper's
    assert TrainConfig.from_sources("cpu", overrides={"method": "cryogen"}).method == "cryogen"
    assert cfg.lr == 2e-4  # file over preset
    assert cfg.batch_size == 3  # override over file; None overrides are ignored
    assert cfg.steps == 50 and cfg.minutes is None
    # giving minutes alone clears the preset's steps, and the other way round
    cfg = TrainConfig.from_sources("paper", overrides={"minutes": 2.0})
    assert cfg.steps is None and cfg.minutes == 2.0
    cfg = TrainConfig.from_sources("cpu", overrides={"steps": 7})
    assert cfg.steps == 7 and cfg.minutes is None
    # None in `overrides` means "not given"; `exact` applies None too (--set key=null)
    assert (
        TrainConfig.from_sources("cpu", overrides={"checkpoint_minutes": None}).checkpoint_minutes
        == 1.0
    )
    assert (
        TrainConfig.from_sources("cpu", exact={"checkpoint_minutes": None}).checkpoint_minutes
        is None
    )
    # a TOML file, and the preset named by the file
    t = tmp_path / "c.toml"
    t.write_text('preset = "paper"\nseed = 4\n')
    cfg = TrainConfig.from_sources(None, t)
    assert cfg.preset == "paper" and cfg.seed == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": -1.0},
        {"tilt_min": 70.0},
        {"crop_size": 128},
        {"nonsense": 1},
        {"adv_loss": "mse"},
        {"features": (4,)},
        {"arch": "unet", "deep_supervision": True},
        {"arch": "resnet"},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(InputError, match="invalid training config"):
        TrainConfig.from_sources("cpu", overrides=bad)


def test_schedules():
    cfg = TrainConfig(
        consistency_weight=2.0,
        lambda_min=0.5,
        lambda_hold=0.2,
        warmup_fraction=0.1,
        lr_final_factor=0.0,
        adv_weight=3e-3,
        adv_start=0.3,
        adv_ramp=0.2,
    )
    assert cfg.lambda_at(0.0) == cfg.lambda_at(0.2) == 2.0
    assert math.isclose(cfg.lambda_at(0.6), 1.25) and math.isclose(cfg.lambda_at(1.0), 0.5)
    assert math.isclose(cfg.lr_factor(0.05), 0.5) and math.isclose(cfg.lr_factor(0.1), 1.0)
    assert math.isclose(cfg.lr_factor(0.55), 0.5) and cfg.lr_factor(1.0) == 0.0
    assert cfg.adv_factor(0.29) == 0.0 and math.isclose(cfg.adv_factor(0.4), 0.5)
    assert cfg.adv_factor(0.9) == 1.0
    iso = TrainConfig(rounds=10, isonet_noise_max=0.2, isonet_noise_start=0.5)
    levels = [iso.isonet_noise(r) for r in range(10)]
    assert levels[:5] == [0.0] * 5 and math.isclose(levels[-1], 0.2)
    assert all(b > a for a, b in zip(levels[4:], levels[5:], strict=False))
    # CryoGEN's eps_h: constant (paper) or on IsoNet's ramp, read at the round of progress p
    assert TrainConfig(sigma_h=0.1, sigma_h_schedule="uniform").sigma_h_at(0.0) == 0.1
    ramped = TrainConfig(sigma_h=0.1, sigma_h_schedule="rounds", rounds=10, isonet_noise_start=0.5)
    p_levels = [ramped.sigma_h_at((r + 0.5) / 10) for r in range(10)]
    assert all(math.isclose(a, 0.5 * b) for a, b in zip(p_levels, levels, strict=True))
    assert ramped.sigma_h_at(1.0) == 0.1 and ramped.sigma_h_at(0.49) == 0.0


@pytest.mark.parametrize("name", ["adv_wedge", "data_wedge"])
def test_subtomogram_wedge_needs_refilled_targets(tiny, name):
    with pytest.raises(InputError, match="refilled"):
        tiny(**{name: "subtomogram"}, consistency_target="generator")


def test_d_start_after_adv_start_is_refused(tiny):
    with pytest.raises(InputError, match="d_start"):
        tiny(adv_start=0.2, d_start=0.3)


SECTIONS = (
    MethodSettings,
    ObjectiveSettings,
    ConsistencySettings,
    OptimisationSettings,
    DataSettings,
    RunSettings,
    IsoNetSettings,
)


def test_config_is_its_sections_and_its_json_stays_flat(tmp_path):
    """Every field belongs to exactly one section; config.json and config files name
    fields without a section, and a saved config loads back equal."""
    own = [f for s in SECTIONS for f in s.model_fields]
    assert len(own) == len(set(own))
    from cryogen.model import EnergySettings, GeneratorSettings

    nets = [*GeneratorSettings.model_fields, *EnergySettings.model_fields]
    assert sorted(TrainConfig.model_fields) == sorted(own + nets)
    cfg = TrainConfig.from_sources("paper", overrides={"lr": 2e-4, "rounds": 3})
    saved = json.loads(cfg.to_json())
    assert all(not isinstance(v, dict) for v in saved.values())
    assert TrainConfig.model_validate(saved) == cfg
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lr": 3e-4, "n_subtomos": 4, "refill_every": None}))
    from_file = TrainConfig.from_sources(None, f)
    assert (from_file.lr, from_file.n_subtomos, from_file.refill_every) == (3e-4, 4, None)


def test_a_resume_may_change_only_the_budget_and_where_it_runs():
    assert RESUMABLE_FIELDS == {
        "steps",
        "minutes",
        "device",
        "amp",
        "threads",
        "checkpoint_every",
        "checkpoint_minutes",
        "log_every",
    }
    # a config saved before a field existed gets the value its run used
    assert saved_config_fill({"sigma_h_schedule": "rounds"}) == {
        "adv_wedge": "crop",
        "data_wedge": "crop",
        "d_start": 0.0,
        "refill_tta": False,
        "crop_operator": "hard",
        "fake_noise": "none",
    }


def test_budget_progress_is_the_larger_fraction():
    run = RunSettings(steps=100, minutes=2.0)
    assert run.progress_at(50, 30.0) == 0.5 and run.progress_at(10, 90.0) == 0.75
    assert run.progress_at(500, 0.0) == 1.0
    assert not run.budget_spent(99, 119.0)
    assert run.budget_spent(100, 0.0) and run.budget_spent(0, 120.0)
