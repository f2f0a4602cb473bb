"""File-level steps: a tilt series read and binned, deconvolution and masks of MRC files
equal the in-memory functions and keep the header."""

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.io import read_volume, write_tlt
from cryogen.tomo import CTFParams, deconvolve_chunked, fourier_crop, make_mask
from cryogen.tomo.files import deconvolve_file, mask_file, read_tilt_series
from support import write_mrc


def blobs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    c = np.arange(n) - n // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    v = np.zeros((n, n, n), np.float32)
    for _ in range(6):
        p, s = rng.uniform(-6, 6, 3), rng.uniform(1.5, 3.0)
        v += np.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * s * s))
    return v


@pytest.fixture
def series(tmp_path):
    images = np.random.default_rng(0).normal(size=(5, 12, 16)).astype(np.float32)
    write_mrc(tmp_path / "ts.mrc", images, 2.0)
    write_tlt(tmp_path / "ts.tlt", [-40, -20, 0, 20, 40])
    return tmp_path / "ts.mrc", tmp_path / "ts.tlt", images


def test_tilt_series_as_read(series):
    path, tlt, images = series
    ts = read_tilt_series(path, tlt)
    np.testing.assert_array_equal(np.asarray(ts.images), images)
    np.testing.assert_array_equal(ts.angles, [-40, -20, 0, 20, 40])
    assert (ts.pixel_size, ts.bin_factor) == (2.0, 1.0)
    assert ts.tomogram_shape() == (16, 12, 16)  # a cube by default
    assert ts.tomogram_shape(7) == (7, 12, 16)


@pytest.mark.parametrize("how", [{"bin_factor": 2.0}, {"target_pixel_size": 4.0}])
def test_binning_crops_every_image_in_fourier_space(series, how):
    path, tlt, images = series
    ts = read_tilt_series(path, tlt, **how)
    assert ts.images.shape == (5, 6, 8) and ts.pixel_size == 4.0 and ts.bin_factor == 2.0
    expected = fourier_crop(torch.from_numpy(images[3]), (6, 8)).numpy()
    np.testing.assert_allclose(ts.images[3], expected, rtol=1e-6, atol=1e-6)
    assert ts.tomogram_shape(10) == (5, 6, 8)  # the thickness is binned too


def test_tilt_series_errors_name_the_files_and_parameters(series, tmp_path):
    path, _, _ = series
    write_tlt(tmp_path / "bad.tlt", [0, 10])
    with pytest.raises(InputError, match="bad.tlt: 2 tilt angles for the 5 images of"):
        read_tilt_series(path, tmp_path / "bad.tlt")
    with pytest.raises(InputError, match="either bin_factor or target_pixel_size"):
        read_tilt_series(path, tmp_path / "ts.tlt", bin_factor=2.0, target_pixel_size=4.0)
    with pytest.raises(InputError, match="only bins"):
        read_tilt_series(path, tmp_path / "ts.tlt", target_pixel_size=1.0)


def test_deconvolved_file_equals_the_chunked_deconvolution(tmp_path):
    vol = blobs()
    write_mrc(tmp_path / "t.mrc", vol, 10.0, origin=(5.0, 6.0, 7.0))
    params = CTFParams(defocus=20000.0)
    out = deconvolve_file(tmp_path / "t.mrc", tmp_path / "d.mrc", params, chunk_size=16)
    expected = deconvolve_chunked(vol, np.empty_like(vol), 10.0, params, chunk_size=16)
    got = read_volume(out)
    np.testing.assert_array_equal(got.data, expected)
    assert got.voxel_size == 10.0 and tuple(got.origin) == (5.0, 6.0, 7.0)


def test_mask_file_equals_the_mask_and_reports_its_cover(tmp_path):
    vol = blobs()
    write_mrc(tmp_path / "t.mrc", vol, 10.0)
    options = {"protein": "bright", "patch_size": 2, "z_crop": 0.0}
    cover = mask_file(tmp_path / "t.mrc", tmp_path / "m.mrc", **options)
    expected = make_mask(vol, **options).numpy()
    got = read_volume(tmp_path / "m.mrc", check_values=False)
    np.testing.assert_array_equal(got.data, expected)
    assert cover == pytest.approx(expected.mean()) and 0 < cover < 1
    assert got.voxel_size == 10.0
