"""An MRC file in, an MRC file out: header, scale and orientation kept, nothing left behind
on an error, the same numbers as in memory."""

import mrcfile
import numpy as np
import pytest
from torch import nn

from cryogen.errors import InputError, OutputError
from cryogen.predict import PredictOptions, load_model, predict_file, predict_volume
from predict.fakes import make_model, random_generator, wedged
from support import tiny_config, write_mrc


def read_mrc(path):
    """Data, voxel size and origin ``(x, y, z)`` of an MRC file."""
    with mrcfile.open(path, permissive=True) as m:
        return (
            np.array(m.data),
            float(m.voxel_size.x),
            tuple(float(o) for o in m.header.origin.item()),
        )


def test_predict_file_keeps_header_scale_and_orientation(tmp_path):
    cfg = tiny_config()
    x = wedged((12, 26, 20), seed=2)
    gen = random_generator(cfg)
    model = make_model(gen, mean=float(x.mean()), std=float(x.std()))
    src = write_mrc(tmp_path / "t.rec", x, voxel_size=3.25, origin=(10.0, -4.0, 7.5))
    options = PredictOptions(overlap=4)
    res = predict_file(model, src, tmp_path / "o.mrc", options)
    data, voxel, origin = read_mrc(tmp_path / "o.mrc")
    assert data.shape == x.shape and res.shape == x.shape and voxel == pytest.approx(3.25)
    assert origin == (10.0, -4.0, 7.5)
    ref = predict_volume(model, x, options)
    np.testing.assert_allclose(data, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
    # beam along y: computed in the z convention, written back in the file's orientation
    from cryogen.io import rotate_beam_y_to_z, rotate_beam_z_to_y

    xy = np.ascontiguousarray(rotate_beam_z_to_y(x))
    write_mrc(tmp_path / "ty.mrc", xy, voxel_size=3.25, origin=(10.0, 7.5, -4.0))
    predict_file(model, tmp_path / "ty.mrc", tmp_path / "oy.mrc", options, beam_axis="y")
    dy, _, oy = read_mrc(tmp_path / "oy.mrc")
    assert dy.shape == xy.shape and oy == (10.0, 7.5, -4.0)
    np.testing.assert_allclose(
        rotate_beam_y_to_z(dy), ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max())
    )


def test_predict_file_writes_the_std_map_and_refuses_to_overwrite(tmp_path):
    x = wedged((10, 14, 12))
    model = make_model(nn.Identity(), sigma_g=0.3, mean=float(x.mean()), std=5.0)
    write_mrc(tmp_path / "t.mrc", x)
    options = PredictOptions(overlap=4, samples=3)
    res = predict_file(
        model, tmp_path / "t.mrc", tmp_path / "o.mrc", options, std_path=tmp_path / "s.mrc"
    )
    assert res.std == tmp_path / "s.mrc" and res.tiles == 1
    mean, std = np.zeros_like(x), np.zeros_like(x)
    from cryogen.predict import predict_stream

    predict_stream(model, x, mean, options, std_out=std)
    assert np.array_equal(read_mrc(tmp_path / "o.mrc")[0], mean)
    assert np.array_equal(read_mrc(tmp_path / "s.mrc")[0], std)
    with pytest.raises(OutputError, match="already exists") as err:
        predict_file(model, tmp_path / "t.mrc", tmp_path / "o.mrc", options)
    assert err.value.advice == "overwrite"


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_nan_input_leaves_no_output(tmp_path):
    x = wedged((40, 12, 12))
    x[35, 3, 3] = np.nan
    write_mrc(tmp_path / "bad.mrc", x)
    model = make_model(nn.Identity())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=r"bad\.mrc: the volume contains NaN"):
        predict_file(model, tmp_path / "bad.mrc", out_dir / "o.mrc", PredictOptions(overlap=4))
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


def test_load_model_of_a_saved_checkpoint_streams_like_the_model_in_memory(tmp_path, checkpoint):
    x = wedged((14, 24, 20))
    model = load_model(checkpoint, "cpu")
    write_mrc(tmp_path / "t.mrc", x)
    predict_file(
        model, tmp_path / "t.mrc", tmp_path / "o.mrc", PredictOptions(overlap=4, batch_size=2)
    )
    got, _, _ = read_mrc(tmp_path / "o.mrc")
    ref = predict_volume(model, x, PredictOptions(overlap=4))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
