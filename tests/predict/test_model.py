"""A trained run's model: what ``load_model`` reads and refuses, and predicting with it."""

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.predict import PredictOptions, load_model, predict_volume
from cryogen.wedge import missing_wedge_mask, wedge_operator
from predict.fakes import identity_checkpoint
from support import tiny_config


def test_keep_measured_keeps_the_measured_fourier_data(run_dir, volume):
    model = load_model(run_dir, "cpu")
    out = predict_volume(model, volume, PredictOptions(keep_measured=True, overlap=4))
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
    from cryogen.train import train

    train(tiny_config(steps=2, arch="unet"), [volume], tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run", "cpu")
    assert model.config.arch == "unet" and model.generator.nested is False
    assert set(model.generator.nodes) == {"x0_0", "x1_0", "x0_1"}
    out = predict_volume(model, volume, PredictOptions(overlap=4))
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
