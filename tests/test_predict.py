"""Whole-volume prediction, checkpoint checks, and the train / predict commands."""

import json
import math

import mrcfile
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from cryogen.errors import InputError
from cryogen.model import build_generator, save_checkpoint
from cryogen.predict import load_model, predict_volume
from cryogen.train import TrainConfig, train
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator

TINY = dict(
    method="cryogen",
    features=(4, 8),
    energy_features=(4, 4),
    energy_fc_features=(8,),
    subtomo_size=20,
    crop_size=16,
    n_subtomos=2,
    amp="off",
    threads=1,
    device="cpu",
    minutes=None,
)


@pytest.fixture(scope="module")
def volume():
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 26, 30, 22, generator=g), 5, 1, 2)[0, 0]
    return (apply_missing_wedge(v, -60, 60) * 40 + 100).numpy()  # far from mean 0, std 1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, volume):
    d = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.from_sources("cpu", overrides={**TINY, "steps": 2, "method": "isonet"})
    train(cfg, [volume], d, voxel_size=4.0, progress=False)
    return d


def identity_checkpoint(path, volume, tilt=(-60.0, 60.0)):
    """A checkpoint holding the untrained generator (zero-initialised residual head = identity)."""
    cfg = TrainConfig.from_sources(
        "cpu", overrides={**TINY, "steps": 1, "tilt_min": tilt[0], "tilt_max": tilt[1]}
    )
    g = build_generator(cfg)
    save_checkpoint(
        path,
        {
            "kind": "generator",
            "config": cfg.model_dump(mode="json"),
            "method": "cryogen",
            "tilt_min": tilt[0],
            "tilt_max": tilt[1],
            "voxel_size": 1.0,
            "normalisation": {"mean": float(volume.mean()), "std": float(volume.std())},
            "crop_size": 16,
            "step": 0,
            "elapsed_s": 0.0,
            "generator": g.state_dict(),
        },
    )
    return path


def test_identity_generator_restores_the_input_scale(tmp_path, volume):
    model = load_model(identity_checkpoint(tmp_path / "id.pt", volume), "cpu")
    out = predict_volume(model, volume, overlap=4, batch_size=2)
    assert out.shape == volume.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, rtol=1e-5, atol=1e-3)


def test_keep_measured_keeps_the_measured_fourier_data(run_dir, volume):
    model = load_model(run_dir, "cpu")
    out = predict_volume(model, volume, keep_measured=True, overlap=4)
    m = missing_wedge_mask(volume.shape, -60, 60, dtype=torch.float64)
    t_out = wedge_operator(torch.as_tensor(out, dtype=torch.float64), m)
    t_in = wedge_operator(torch.as_tensor(volume, dtype=torch.float64), m)
    torch.testing.assert_close(t_out, t_in, rtol=0, atol=1e-3)


def test_load_model_reads_what_was_trained(run_dir):
    model = load_model(run_dir, "cpu")
    assert model.method == "isonet" and (model.tilt_min, model.tilt_max) == (-60.0, 60.0)
    assert model.voxel_size == 4.0 and model.crop_size == 16 and model.step == 2
    assert not model.generator.training
    snap = load_model(run_dir / "checkpoints" / "step_000002.pt", "cpu")
    for k, v in snap.generator.state_dict().items():
        assert torch.equal(v, model.generator.state_dict()[k])


def test_plain_unet_run_trains_and_predicts(tmp_path, volume):
    """``arch="unet"`` is stored in the run's config, so prediction rebuilds a plain U-Net."""
    cfg = TrainConfig.from_sources("cpu", overrides={**TINY, "steps": 2, "arch": "unet"})
    train(cfg, [volume], tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run", "cpu")
    assert model.config.arch == "unet" and model.generator.nested is False
    assert set(model.generator.nodes) == {"x0_0", "x1_0", "x0_1"}
    out = predict_volume(model, volume, overlap=4)
    assert out.shape == volume.shape and np.isfinite(out).all()


def test_load_model_refuses_what_does_not_fit(tmp_path, run_dir, volume):
    with pytest.raises(InputError, match=r"trained for tilt range \[-60, 60\].*\[-50, 60\]"):
        load_model(run_dir, "cpu", tilt_min=-50)
    with pytest.raises(InputError, match="trained with method 'isonet', not the requested"):
        load_model(run_dir, "cpu", method="cryogen")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_model(tmp_path / "missing", "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable CryoGEN checkpoint"):
        load_model(tmp_path / "junk.pt", "cpu")
    model = load_model(
        identity_checkpoint(tmp_path / "a.pt", volume, (-54, 62)), "cpu", tilt_min=-54, tilt_max=62
    )
    assert (model.tilt_min, model.tilt_max) == (-54.0, 62.0)


# ------------------------------------------------------------------------------ CLI
import cryogen.io  # noqa: E402

needs_io = pytest.mark.skipif(
    not hasattr(cryogen.io, "read_volume"), reason="cryogen.io.read_volume not available yet"
)


def write_mrc(path, data, voxel):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel


@pytest.fixture()
def app():
    from cryogen.cli_predict import register as register_predict
    from cryogen.cli_train import register

    a = typer.Typer()
    register(a)
    register_predict(a)
    return a


@needs_io
@pytest.mark.parametrize("arch, label", [("unetpp", "U-Net++"), ("unet", "U-Net")])
def test_cli_dry_run_prints_parameter_counts(tmp_path, app, volume, arch, label):
    from cryogen.nets import count_parameters

    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(tmp_path / "t.mrc"),
            "-o",
            str(tmp_path / "r"),
            "--dry-run",
            "--method",
            "cryogen",
            "--set",
            "features=[4,8,16]",
            "--set",
            f'arch="{arch}"',
        ],
    )
    assert res.exit_code == 0, res.output
    n = count_parameters(build_generator(TrainConfig(features=(4, 8, 16), arch=arch)))
    assert f"generator g ({label})" in res.output and f"{n:,}" in res.output
    assert "energy model E" in res.output and "CryoGEN (Algorithm 1)" in res.output
    assert '"features": [' in res.output and not (tmp_path / "r" / "last.pt").exists()


@needs_io
def test_cli_train_then_predict(tmp_path, app, volume):
    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    run = CliRunner().invoke(
        app,
        [
            "train",
            str(tmp_path / "t.mrc"),
            "-o",
            str(tmp_path / "r"),
            "--steps",
            "3",
            "--device",
            "cpu",
            "--quiet",
            "--tilt-min",
            "-55",
            "--tilt-max",
            "58",
            "--set",
            "features=[4,8]",
            "--set",
            "energy_features=[4,4]",
            "--set",
            'amp="off"',
            "--crop-size",
            "16",
            "--set",
            "subtomo_size=20",
            "--set",
            "n_subtomos=2",
        ],
    )
    assert run.exit_code == 0, run.output
    assert (tmp_path / "r" / "last.pt").is_file() and (tmp_path / "r" / "losses.csv").is_file()
    out = tmp_path / "out.mrc"
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "r"),
            str(tmp_path / "t.mrc"),
            "-o",
            str(out),
            "--device",
            "cpu",
            "--overlap",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    with mrcfile.open(out) as m:
        assert m.data.shape == volume.shape
        assert math.isclose(float(m.voxel_size.x), 3.0, rel_tol=1e-6)
        assert np.isfinite(m.data).all()
        assert abs(float(m.data.mean()) - float(volume.mean())) < 5  # the input's scale
    # the checkpoint's tilt range is checked; errors are one line, exit code 1
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "r"),
            str(tmp_path / "t.mrc"),
            "-o",
            str(tmp_path / "o2.mrc"),
            "--tilt-min",
            "-60",
        ],
    )
    assert res.exit_code == 1
    assert "trained for tilt range [-55, 58]" in res.output
    # an existing output is kept without --overwrite
    res = CliRunner().invoke(
        app, ["predict", str(tmp_path / "r"), str(tmp_path / "t.mrc"), "-o", str(out)]
    )
    assert res.exit_code == 1


@needs_io
def test_cli_resumes_a_run_saved_before_a_field_existed(tmp_path, app, volume):
    """A run whose config.json and checkpoint lack a later field resumes with the value it
    ran with (ADDED_FIELDS), not today's default."""
    from cryogen.model import load_checkpoint, save_checkpoint
    from cryogen.train.config import ADDED_FIELDS

    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    args = ["train", str(tmp_path / "t.mrc"), "-o", str(tmp_path / "r"), "--device", "cpu"]
    args += ["--quiet", "--crop-size", "16", "--set", "features=[4,8]", "--set", 'amp="off"']
    args += ["--set", "subtomo_size=20", "--set", "n_subtomos=2"]
    assert CliRunner().invoke(app, [*args, "--steps", "2"]).exit_code == 0
    rd = tmp_path / "r"
    saved = json.loads((rd / "config.json").read_text())
    for k in ADDED_FIELDS:
        saved.pop(k)
    (rd / "config.json").write_text(json.dumps(saved))
    ckpt = load_checkpoint(rd / "last.pt")
    for k in ADDED_FIELDS:
        ckpt["config"].pop(k)
    save_checkpoint(rd / "last.pt", ckpt)
    res = CliRunner().invoke(app, [*args, "--steps", "3", "--resume"])
    assert res.exit_code == 0, res.output
    resumed = json.loads((rd / "config.json").read_text())
    assert all(resumed[k] == v for k, v in ADDED_FIELDS.items())
    assert load_checkpoint(rd / "last.pt")["step"] == 3
