"""Training engine: config resolution, data sampling, both methods, determinism, resume,
checkpoints.  Tiny volumes (<= 32^3) and networks, a few steps each."""

import csv
import io
import json
import logging
import math
import os
import signal

import numpy as np
import pytest
import torch

from cryogen.errors import CryogenError, InputError, OutputError
from cryogen.model import build_energy, compute_normalisation, load_checkpoint
from cryogen.rotations import WEDGE_ROTATIONS, rotate, rotate_box, rotate_inverse
from cryogen.train import TrainConfig, train
from cryogen.train.config import PRESETS
from cryogen.train.data import SubtomoDataset, sample_origins
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator

TINY = dict(
    method="cryogen",
    features=(4, 8),
    energy_features=(4, 4),
    energy_fc_features=(8,),
    subtomo_size=24,
    crop_size=16,
    n_subtomos=3,
    amp="off",
    threads=1,
    device="cpu",
    adv_start=0.0,
    adv_ramp=0.0,
    adv_weight=0.01,
    data_weight=1.0,  # off in the cpu preset; on here so that the tests cover it
    checkpoint_every=1000,
    minutes=None,
)


def tiny_config(**kw):
    # overrides drop None values (a flag not given); an explicit None goes through `exact`
    exact = {k: v for k, v in kw.items() if v is None}
    return TrainConfig.from_sources("cpu", overrides={**TINY, **kw}, exact=exact)


@pytest.fixture(scope="module")
def volume():
    """A wedge-corrupted 28^3 volume: two boxes and a ball."""
    z, y, x = torch.meshgrid(*(torch.arange(28.0),) * 3, indexing="ij")
    v = ((z - 14) ** 2 + (y - 12) ** 2 + (x - 15) ** 2 < 25).float()
    v[4:10, 6:20, 18:24] = 1.0
    v[18:24, 3:8, 3:12] = 0.5
    return apply_missing_wedge(v, -60, 60).numpy()


def read_rows(run_dir):
    with open(run_dir / "losses.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def loss_rows(run_dir):
    """losses.csv without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_rows(run_dir)]


def weights(path, key="generator"):
    return load_checkpoint(path)[key]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ config
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


# ------------------------------------------------------------------------------ data
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


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize(
    "method, adv_loss, extra",
    [
        ("cryogen", "bce", {"r1_weight": 1.0, "instance_noise": 0.1, "sigma": 0.05}),
        ("cryogen", "hinge", {"consistency_target": "generator", "consistency_forward": "reuse"}),
        ("cryogen", "wgan-gp", {"d_steps": 2}),
        (
            "cryogen",
            "bce",
            {
                "amp": "bf16",
                "consistency_target": "wedge_filled",
                "gan_every": 2,
                "refill_every": 2,
            },
        ),
        (
            "cryogen",
            "bce",
            {"refill_every": 2, "data_margin": 2, "deep_supervision": True, "arch": "unetpp"},
        ),
        ("cryogen", "bce", {"adv_source": "generator", "gan_every": 2}),
        ("cryogen", "bce", {"adv_wedge": "subtomogram", "batch_size": 2}),
        ("cryogen", "hinge", {"adv_wedge": "subtomogram", "adv_source": "generator"}),
        ("cryogen", "bce", {"data_wedge": "subtomogram", "data_margin": 2}),
        ("isonet", "bce", {"rounds": 2, "isonet_noise_start": 0.0, "refill_every": None}),
        ("isonet", "bce", {"rounds": 2, "refill_every": 1}),
    ],
)
def test_each_method_gives_finite_losses(tmp_path, volume, method, adv_loss, extra):
    cfg = tiny_config(method=method, adv_loss=adv_loss, steps=4, **extra)
    res = train(cfg, [volume], tmp_path / "run", progress=False)
    assert res.step == 4 and not res.interrupted
    rows = read_rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    terms = ["loss", "consistency"] + (["data", "adv_g", "d_loss"] if method == "cryogen" else [])
    for t in terms:  # terms computed every `gan_every` steps are blank in between
        values = [float(r[t]) for r in rows if r[t] != ""]
        assert values and all(math.isfinite(v) for v in values), (t, rows)
    assert all(math.isfinite(float(r["grad_norm"])) and float(r["grad_norm"]) > 0 for r in rows)
    if method == "isonet":
        assert {r["round"] for r in rows} == {"0", "1"}  # the noise's round advanced
    assert (tmp_path / "run" / "losses.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == method


@pytest.mark.parametrize("adv_rotate", [True, False])
def test_energy_model_sees_the_generators_fill(tmp_path, volume, monkeypatch, adv_rotate):
    """With adv_source="consistency", E judges T_M(R2 out_rot): the gradient it sends back
    reaches the part of g's output in its own missing wedge (the fill), which T_M(out_rot)
    alone never does."""
    from cryogen.train import engine

    calls, fakes = [], []
    real_rot, real_d_update = engine._rot, engine._Trainer._d_update

    def rot(x, rots, inverse=False):
        out = real_rot(x, rots, inverse)
        calls.append({"x": x, "rots": list(rots), "inverse": inverse, "out": out})
        return out

    def d_update(self, real, fake, ui):
        fakes.append(fake)
        return real_d_update(self, real, fake, ui)

    monkeypatch.setattr(engine, "_rot", rot)
    monkeypatch.setattr(engine._Trainer, "_d_update", d_update)
    cfg = tiny_config(steps=1, adv_source="consistency", adv_rotate=adv_rotate)
    train(cfg, [volume], tmp_path / "run", progress=False)
    assert len(calls) == (3 if adv_rotate else 2) and calls[1]["inverse"]
    out_rot = calls[1]["x"]  # g's output in the rotated frame (the 2nd call rotates it back)
    mask = missing_wedge_mask(tuple(out_rot.shape[2:]), -60, 60)
    if adv_rotate:
        assert calls[2]["x"] is out_rot and calls[2]["rots"][0] in WEDGE_ROTATIONS

    def view(x):  # what E is shown of out_rot
        return wedge_operator(real_rot(x, calls[2]["rots"]) if adv_rotate else x, mask)

    assert torch.allclose(fakes[0], view(out_rot).detach())
    # the gradient of any score of the fake w.r.t. out_rot, in out_rot's own missing wedge
    x = out_rot.detach().clone().requires_grad_(True)
    (view(x) * torch.randn_like(x)).sum().backward()
    power = torch.fft.rfftn(x.grad, dim=(-3, -2, -1)).abs().pow(2)  # the mask's layout
    in_wedge = power[..., mask == 0].sum() / power.sum()
    assert in_wedge > 0.05 if adv_rotate else in_wedge < 1e-10


def _poison_gradients(monkeypatch, bad_calls):
    """Make the generator's first parameter get a NaN gradient on the listed backward calls."""
    from cryogen.train import engine

    build = engine.build_generator
    calls = {"n": 0}

    def poisoned(config):
        g = build(config)

        def hook(grad):
            calls["n"] += 1
            return grad * float("nan") if bad_calls(calls["n"]) else grad

        next(g.parameters()).register_hook(hook)
        return g

    monkeypatch.setattr(engine, "build_generator", poisoned)
    return calls


def test_non_finite_gradient_skips_the_update(tmp_path, volume, monkeypatch, caplog):
    _poison_gradients(monkeypatch, lambda n: n == 2)
    cfg = tiny_config(method="isonet", steps=4)
    with caplog.at_level("WARNING", logger="cryogen.train.engine"):
        res = train(cfg, [volume], tmp_path / "run", progress=False)
    assert res.step == 4 and not res.interrupted
    assert "step 2: non-finite gradient, update skipped" in caplog.text
    norms = [r["grad_norm"] for r in read_rows(tmp_path / "run")]
    assert norms[1] == "" and all(float(v) > 0 for i, v in enumerate(norms) if i != 1)
    for v in weights(tmp_path / "run" / "last.pt").values():
        assert torch.isfinite(v).all()


def test_persistent_non_finite_gradients_stop_training(tmp_path, volume, monkeypatch):
    from cryogen.train.engine import MAX_SKIPPED_IN_A_ROW

    _poison_gradients(monkeypatch, lambda n: n >= 3)
    cfg = tiny_config(method="isonet", steps=MAX_SKIPPED_IN_A_ROW + 10)
    with pytest.raises(CryogenError, match="non-finite gradients in 21 steps in a row"):
        train(cfg, [volume], tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("method", ["cryogen", "isonet"])
def test_generator_loss_falls(tmp_path, volume, method):
    """The consistency loss over all 20 rotations of one fixed crop falls with training."""
    # one crop (subtomogram = crop), no refill within the run, constant lr
    cfg = tiny_config(
        method=method,
        steps=60,
        lr=3e-3,
        warmup_fraction=0.0,
        adv_weight=0.0,
        features=(8, 16),
        sigma_g=0.0,
        sigma_h=0.0,
        lambda_min=1.0,
        n_subtomos=1,
        subtomo_size=16,
        batch_size=2,
        lr_final_factor=1.0,
        rounds=1,
        refill_every=None,
        gan_every=1,
        isonet_noise_max=0.0,
    )
    res = train(cfg, [volume], tmp_path / "run", progress=False)
    ds = SubtomoDataset(
        [volume],
        subtomo_size=16,
        n_subtomos=1,
        crop_size=16,
        seed=int(np.random.SeedSequence(cfg.seed).spawn(3)[0].generate_state(1)[0]),
    )
    y = ds.subtomos[:1, None]  # (1, 1, 16, 16, 16), the only crop
    mask = missing_wedge_mask((16, 16, 16), -60, 60)

    def loss(g):
        with torch.no_grad():
            return float(
                np.mean(
                    [
                        torch.nn.functional.mse_loss(
                            rotate_inverse(g(wedge_operator(rotate(y, r), mask)), r), y
                        )
                        for r in WEDGE_ROTATIONS
                    ]
                )
            )

    before, after = loss(lambda t: t), loss(res.generator.float())  # untrained g = identity
    assert after < 0.85 * before, (before, after)


def test_same_seed_same_weights(tmp_path, volume):
    cfg = tiny_config(steps=3)
    train(cfg, [volume], tmp_path / "a", progress=False)
    train(cfg, [volume], tmp_path / "b", progress=False)
    assert_same_state(weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt"))
    assert loss_rows(tmp_path / "a") == loss_rows(tmp_path / "b")
    train(tiny_config(steps=3, seed=1), [volume], tmp_path / "c", progress=False)
    other = weights(tmp_path / "c" / "last.pt")
    assert any(not torch.equal(v, other[k]) for k, v in weights(tmp_path / "a" / "last.pt").items())


@pytest.mark.parametrize(
    "method, extra",
    [
        ("cryogen", {"r1_weight": 1.0, "instance_noise": 0.1, "sigma": 0.05, "dropout": 0.1}),
        ("isonet", {"rounds": 3, "isonet_noise_start": 0.0, "refill_every": None}),
        ("isonet", {"rounds": 3, "refill_every": 2}),
    ],
)
def test_resume_equals_uninterrupted(tmp_path, volume, method, extra):
    cfg = tiny_config(method=method, steps=6, **extra)
    full = train(cfg, [volume], tmp_path / "full", progress=False)

    def stop_at_3(info):
        return info["step"] == 3

    part = train(cfg, [volume], tmp_path / "part", progress=False, callback=stop_at_3)
    assert part.interrupted and part.step == 3
    resumed = train(cfg, [volume], tmp_path / "part", progress=False, resume=True)
    assert resumed.step == 6 and full.step == 6
    assert loss_rows(tmp_path / "full") == loss_rows(tmp_path / "part")
    keys = ["generator"] + (["energy", "opt_d"] if method == "cryogen" else [])
    a, b = (
        load_checkpoint(tmp_path / "full" / "last.pt"),
        load_checkpoint(tmp_path / "part" / "last.pt"),
    )
    for k in keys[:2]:
        assert_same_state(a[k], b[k])
    if method == "isonet":
        assert torch.equal(a["isonet"]["filled"], b["isonet"]["filled"])


def test_resume_upgrades_an_older_losses_header(tmp_path, volume):
    """A run logged before a column was added resumes under today's header."""
    from cryogen.train.engine import LOSS_COLUMNS

    cfg = tiny_config(method="isonet", steps=4)
    train(cfg, [volume], tmp_path / "r", progress=False, callback=lambda i: i["step"] == 2)
    path = tmp_path / "r" / "losses.csv"
    with path.open(newline="") as fh:
        old = [row[:-1] for row in csv.reader(fh)]  # as written without the last column
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(old)
    train(cfg, [volume], tmp_path / "r", progress=False, resume=True)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(LOSS_COLUMNS) and [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert len(rows[1]) == len(LOSS_COLUMNS) - 1 and len(rows[4]) == len(LOSS_COLUMNS)


def test_resume_a_checkpoint_without_the_energy_models_streams(tmp_path, volume):
    """A checkpoint written before E's draws had their own streams resumes; those streams
    then start from the seed, as in a fresh run (the others continue)."""
    from cryogen.model import save_checkpoint

    cfg = tiny_config(steps=4)
    train(cfg, [volume], tmp_path / "r", progress=False, callback=lambda i: i["step"] == 2)
    ck = load_checkpoint(tmp_path / "r" / "last.pt")
    assert set(ck["rng"]["named_numpy"]) == {"step", "e_step"}
    del ck["rng"]["named_numpy"]["e_step"], ck["rng"]["named_torch"]["e_noise"]
    save_checkpoint(tmp_path / "r" / "last.pt", ck)
    res = train(cfg, [volume], tmp_path / "r", progress=False, resume=True)
    assert res.step == 4
    assert [r["step"] for r in read_rows(tmp_path / "r")] == ["1", "2", "3", "4"]


def test_ctrl_c_writes_a_checkpoint_and_resumes(tmp_path, volume):
    cfg = tiny_config(steps=4)
    train(cfg, [volume], tmp_path / "full", progress=False)

    def interrupt(info):
        if info["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    res = train(cfg, [volume], tmp_path / "run", progress=False, callback=interrupt)
    assert res.interrupted and res.step == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    train(cfg, [volume], tmp_path / "run", progress=False, resume=True)
    assert loss_rows(tmp_path / "full") == loss_rows(tmp_path / "run")


def test_checkpoint_contents(tmp_path, volume):
    cfg = tiny_config(steps=4, checkpoint_every=2)
    train(cfg, [volume], tmp_path / "run", voxel_size=7.5, progress=False)
    full = load_checkpoint(tmp_path / "run" / "last.pt")
    for key in (
        "config",
        "method",
        "tilt_min",
        "tilt_max",
        "voxel_size",
        "normalisation",
        "crop_size",
        "step",
        "elapsed_s",
        "generator",
        "energy",
        "opt_g",
        "opt_d",
        "scaler_g",
        "rng",
        "data",
        "isonet",
    ):
        assert key in full, key
    assert full["kind"] == "full" and full["step"] == 4 and full["voxel_size"] == 7.5
    assert (full["tilt_min"], full["tilt_max"]) == (-60.0, 60.0)
    assert TrainConfig.model_validate(full["config"]) == cfg
    assert math.isclose(full["normalisation"]["std"], float(volume.std()), rel_tol=1e-5)
    assert set(full["rng"]) >= {"torch", "numpy", "python", "named_numpy", "named_torch"}
    snaps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert snaps == ["step_000002.pt", "step_000004.pt"]
    snap = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_000002.pt")
    assert snap["kind"] == "generator" and "energy" not in snap and snap["step"] == 2
    assert_same_state(snap["generator"] if False else full["generator"], full["generator"])
    saved = TrainConfig.model_validate_json((tmp_path / "run" / "config.json").read_text())
    assert saved == cfg


def test_run_folder_rules(tmp_path, volume):
    cfg = tiny_config(steps=2)
    train(cfg, [volume], tmp_path / "run", progress=False)
    with pytest.raises(OutputError, match="already holds a training run"):
        train(cfg, [volume], tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="differ from the run's"):
        train(
            tiny_config(steps=4, lr=2e-3), [volume], tmp_path / "run", progress=False, resume=True
        )
    with pytest.raises(InputError, match="nothing to resume"):
        train(cfg, [volume], tmp_path / "empty", progress=False, resume=True)
    # a longer budget may be given on resume
    res = train(tiny_config(steps=3), [volume], tmp_path / "run", progress=False, resume=True)
    assert res.step == 3
    res = train(cfg, [volume], tmp_path / "run", progress=False, overwrite=True)
    assert res.step == 2 and len(read_rows(tmp_path / "run")) == 2


def test_device_choice():
    from cryogen.device import pick_device, resolve_amp

    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(InputError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            pick_device("cuda")
    assert resolve_amp("off", torch.device("cpu")) is None
    assert resolve_amp("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="fp16 autocast is not supported on the CPU"):
        resolve_amp("fp16", torch.device("cpu"))


@pytest.mark.parametrize(
    ("capability", "fast"), [("AVX2", False), ("DEFAULT", False), ("AVX512", True), ("AMX", True)]
)
def test_auto_precision_uses_bf16_only_where_the_cpu_makes_it_fast(
    monkeypatch, caplog, capability, fast
):
    """bf16 convolutions run on reference kernels below AVX-512 (measured 14x slower than
    float32 on an AVX2 EPYC): ``auto`` must then pick float32, and ``bf16`` must warn."""
    import cryogen.device as device_mod

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(
        device_mod, "open", lambda *a, **k: io.StringIO("flags: avx2 fma"), raising=False
    )
    assert device_mod.cpu_has_fast_bf16() is fast
    assert device_mod.resolve_amp("auto", cpu) == (torch.bfloat16 if fast else None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cryogen.device"):
        assert device_mod.resolve_amp("bf16", cpu) == torch.bfloat16
    assert ("slow reference kernels" in caplog.text) is not fast
    # native bf16 flags count even when torch reports a lower capability
    monkeypatch.setattr(
        device_mod, "open", lambda *a, **k: io.StringIO("flags: avx512_bf16"), raising=False
    )
    assert device_mod.cpu_has_fast_bf16()


@pytest.mark.parametrize("method", ["isonet", "cryogen"])
def test_refill_keeps_measured_data_and_follows_its_schedule(tmp_path, volume, method):
    """A refill replaces only the missing wedge (``T_M x = T_M y``); rolling: one
    subtomogram every ``refill_every`` steps in turn; rounds: all of them at a new round."""
    from cryogen.train.engine import _Trainer

    cfg = tiny_config(method=method, steps=10, refill_every=2, rounds=4)
    t = _Trainer(
        cfg, [volume], tmp_path / "r", voxel_size=1.0, masks=None, resume=False, overwrite=False
    )
    torch.manual_seed(1)
    with torch.no_grad():  # a generator that is not the identity (its head starts at zero)
        for q in t.g.parameters():
            q.add_(0.3 * torch.randn_like(q))
    y = t.data.subtomos
    t.step = 0
    t._update_filled(0.0)
    assert torch.equal(t.filled, y)  # g' = identity before training
    for step, refilled in [(1, []), (2, [0]), (3, [0]), (4, [0, 1])]:
        t.step = step
        t._update_filled(step / 10)
        for i in range(len(y)):
            changed = not torch.equal(t.filled[i], y[i])
            assert changed == (i in refilled), (step, i)
    for i in (0, 1):
        diff = (t.filled[i] - y[i])[None, None]
        assert float(wedge_operator(diff, t.mask_sub).abs().max()) < 1e-4
        assert float(diff.abs().max()) > 1e-2
    assert t.iso_round == 1  # progress 0.4 of 4 rounds: the round still sets the noise

    t.cfg.refill_every = None  # rounds: everything refilled when a new round starts
    t.filled = y.clone()
    t._update_filled(0.45)
    assert torch.equal(t.filled, y)
    t._update_filled(0.5)
    assert t.iso_round == 2 and all(not torch.equal(t.filled[i], y[i]) for i in range(len(y)))


@pytest.mark.parametrize("tilt", [(-60.0, 60.0), (-54.0, 62.0)])
def test_refill_tta_fills_the_wedge_with_the_rotation_average(tmp_path, volume, tilt):
    """refill_tta: the wedge of a refilled subtomogram holds the mean of R^-1 g(R y) over
    the rotations that keep the wedge; the measured data stay; and it is not g(y)."""
    from cryogen.rotations import rotate, rotate_inverse
    from cryogen.train.engine import _Trainer
    from cryogen.wedge import wedge_symmetries

    filled = {}
    for tta in (False, True):
        cfg = tiny_config(
            steps=4, refill_every=1, refill_tta=tta, tilt_min=tilt[0], tilt_max=tilt[1]
        )
        t = _Trainer(
            cfg, [volume], tmp_path / f"r{tta}", voxel_size=1.0, masks=None, resume=False,
            overwrite=False,
        )  # fmt: skip
        torch.manual_seed(1)
        with torch.no_grad():  # a generator that is not the identity (its head starts at zero)
            for q in t.g.parameters():
                q.add_(0.3 * torch.randn_like(q))
        t.filled = t.data.subtomos.clone()
        t._refill_one(0)
        y = t.data.subtomos[0][None, None]
        with torch.no_grad():
            gys = [
                rotate_inverse(t._g(rotate(y, r).contiguous()), r) for r in wedge_symmetries(*tilt)
            ]
        gy = torch.stack(gys).mean(0) if tta else gys[0]
        ref = (wedge_operator(y - gy, t.mask_sub) + gy)[0, 0]
        torch.testing.assert_close(t.filled[0], ref, rtol=1e-5, atol=1e-5)
        diff = (t.filled[0] - y[0, 0])[None, None]
        assert float(wedge_operator(diff, t.mask_sub).abs().max()) < 1e-4
        filled[tta] = t.filled[0]
    assert float((filled[True] - filled[False]).abs().max()) > 1e-3


def test_subtomogram_fakes_of_the_truth_are_real_samples(tmp_path):
    """adv_wedge="subtomogram": the fake made of the true crop is a crop of the wedged,
    rotated subtomogram, so with no rotation it *is* the real sample; the gradient reaches
    the estimate; data_wedge="subtomogram" scores the truth zero.  On the crop (the
    paper's T_M) the truth's fake is not a real sample and its data term is not zero."""
    from cryogen.train.engine import _Trainer

    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 24, 24, 24, generator=g), 3, 1, 1)[0, 0]
    y = apply_missing_wedge(x, -60, 60)  # the whole volume is the subtomogram
    cfg = tiny_config(adv_wedge="subtomogram", n_subtomos=1, steps=1)
    t = _Trainer(
        cfg, [y], tmp_path / "r", voxel_size=1.0, masks=None, resume=False, overwrite=False
    )
    truth = t.data.normalisation.apply(x)
    t.filled = truth[None].clone()  # a perfect refill
    o, c, s = (3, 5, 8), 16, 24
    est = truth[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c][None, None].clone()
    est.requires_grad_(True)
    real = t._real(t.data.crop(t.data.subtomos, [0], [o]), [0], [o])
    assert torch.allclose(real, t.data.crop(t.data.subtomos, [0], [o]), atol=1e-5)  # T_M y = y
    identity = 0  # CUBE_ROTATIONS[0]
    fake = t._fake(est, lambda: est, [0], [o], [identity])
    assert torch.allclose(fake, real, atol=1e-4)
    for r in WEDGE_ROTATIONS[:6]:
        fake = t._fake(est, lambda: est, [0], [o], [r])
        z, yy, xx = rotate_box(o, c, s, r)
        wedged = wedge_operator(rotate(truth, r)[None, None], t.mask_sub)[0, 0]
        assert torch.allclose(fake[0, 0], wedged[z : z + c, yy : yy + c, xx : xx + c], atol=1e-4)
    fake.pow(2).sum().backward()
    assert est.grad is not None and float(est.grad.abs().max()) > 0
    # the data term with T_M on the subtomogram is zero at the truth, on the crop it is not
    t.e_on = False  # no E this step: the data term alone
    data = {}
    for where in ("subtomogram", "crop"):
        t.cfg.data_wedge, row = where, {}
        y_crop = t.data.crop(t.data.subtomos, [0], [o])
        t._energy_and_data(est.detach(), None, y_crop, [0], [o], 1.0, 1.0, 0.0, row)
        data[where] = row["data"] / float(y_crop.pow(2).mean())
    assert data["subtomogram"] < 1e-8 and data["crop"] > 0.02, data
    t.e_on = True
    t.cfg.adv_wedge = "crop"  # the paper's: T_M of the crop
    crop_fake = t._fake(est.detach(), lambda: est.detach(), [0], [o], [identity])
    crop_real = t._real(t.data.crop(t.data.subtomos, [0], [o]), [0], [o])
    gap = (crop_fake - crop_real).pow(2).mean() / crop_real.pow(2).mean()
    assert gap > 0.02, float(gap)


@pytest.mark.parametrize("name", ["adv_wedge", "data_wedge"])
def test_subtomogram_wedge_needs_refilled_targets(name):
    with pytest.raises(InputError, match="refilled"):
        tiny_config(**{name: "subtomogram"}, consistency_target="generator")


def test_energy_model_waits_for_d_start(tmp_path, volume):
    # d_start 0.5 of 6 steps: E neither learns nor is scored in steps 1-3, then both
    cfg = tiny_config(steps=6, adv_start=0.5, d_start=0.5)
    run = tmp_path / "run"
    train(cfg, [volume], run, progress=False, callback=lambda info: info["step"] == 3)
    e3 = weights(run / "last.pt", "energy")
    train(cfg, [volume], run, progress=False, resume=True)
    e6 = weights(run / "last.pt", "energy")
    rows = read_rows(run)
    assert [r["d_loss"] == "" for r in rows] == [True] * 3 + [False] * 3
    assert all(r["data"] != "" for r in rows)  # the data term does not wait for E
    torch.manual_seed(cfg.seed + 1)  # the initial E, built as the engine builds it
    e0 = build_energy(cfg).state_dict()
    assert e0.keys() == e3.keys()
    assert all(torch.equal(e0[k], e3[k]) for k in e0)
    assert any(not torch.equal(e3[k], e6[k]) for k in e3)


def test_d_start_after_adv_start_is_refused():
    with pytest.raises(InputError, match="d_start"):
        tiny_config(adv_start=0.2, d_start=0.3)


def test_cryogen_without_energy_and_data_terms_is_the_isonet_style_method(tmp_path, volume):
    # CryoGEN's consistency term on refilled targets is the IsoNet-style step: same crops,
    # rotations and noise (E's draws have their own streams), the loss in the rotated frame
    # instead of the original one; with E and the data term off the weights are identical
    base = dict(steps=12, refill_every=4, isonet_noise_start=0.0, rounds=3)
    iso = tiny_config(method="isonet", **base)
    cg = tiny_config(method="cryogen", adv_weight=0.0, data_weight=0.0, **base)
    assert cg.sigma_h == iso.isonet_noise_max and cg.sigma_h_schedule == "rounds"
    train(iso, [volume], tmp_path / "iso", progress=False)
    train(cg, [volume], tmp_path / "cg", progress=False)
    assert_same_state(weights(tmp_path / "iso" / "last.pt"), weights(tmp_path / "cg" / "last.pt"))
    # and with E on, the IsoNet-style run's crops, rotations and consistency noise stay
    cge = tiny_config(method="cryogen", adv_start=0.5, data_weight=0.0, **base)
    train(cge, [volume], tmp_path / "cge", progress=False)
    noise = [[r["noise"] for r in read_rows(tmp_path / d)] for d in ("iso", "cge")]
    assert noise[0] == noise[1] and float(noise[0][-1]) > 0
    a, b = weights(tmp_path / "iso" / "last.pt"), weights(tmp_path / "cge" / "last.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # E's term changed the weights
