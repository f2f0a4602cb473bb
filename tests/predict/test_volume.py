"""Whole-volume prediction, in memory and streamed (one path): identity and constant models,
streaming equals in memory, keeping the measured data, samples and test-time augmentation."""

import numpy as np
import pytest
import torch
from torch import nn

from cryogen.errors import InputError
from cryogen.predict import PredictOptions, load_model, predict_stream, predict_volume
from predict.fakes import (
    Constant,
    identity_checkpoint,
    make_model,
    measured_error,
    random_generator,
    wedged,
)
from support import tiny_config

SHAPES = [(32, 32, 32), (33, 34, 35), (5, 7, 9), (1, 20, 3), (9, 31, 14), (12, 10, 29)]


def test_identity_generator_restores_the_input_scale(tmp_path, volume):
    model = load_model(identity_checkpoint(tmp_path / "id.pt", volume), "cpu")
    out = predict_volume(model, volume, PredictOptions(overlap=4, batch_size=2))
    assert out.shape == volume.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape", SHAPES)
def test_identity_model_returns_the_input_through_streaming(tmp_path, shape):
    x = wedged(shape)
    model = make_model(nn.Identity(), mean=float(x.mean()), std=float(x.std()) + 1.0)
    src = np.memmap(tmp_path / "in.raw", dtype=np.float32, mode="w+", shape=shape)
    src[...] = x
    out = np.memmap(tmp_path / "out.raw", dtype=np.float32, mode="w+", shape=shape)
    predict_stream(model, src, out, PredictOptions(overlap=6, batch_size=3))
    # only the normalisation's float32 round trip (x - m) / s * s + m differs from x
    np.testing.assert_allclose(out, x, rtol=1e-6, atol=1e-4)


def test_constant_model_returns_a_constant():
    x = wedged((13, 22, 17))
    model = make_model(Constant(), mean=3.0, std=2.0)
    out = np.zeros_like(x)
    predict_stream(model, x, out, PredictOptions(overlap=4))
    np.testing.assert_array_equal(out, np.full_like(x, 0.75 * 2.0 + 3.0))


@pytest.mark.parametrize("shape", [(20, 30, 26), (24, 18, 18), (7, 11, 30), (10, 9, 8)])
def test_streaming_equals_predict_volume(tmp_path, shape):
    """A random (orientation-dependent) network: the streamed result, which permutes tiles to
    stream along the longest axis, equals the in-memory one."""
    cfg = tiny_config()
    x = wedged(shape, seed=1)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, PredictOptions(overlap=4, batch_size=1))
    out = np.zeros_like(x)
    predict_stream(model, x, out, PredictOptions(overlap=4, batch_size=2))
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * scale)


def test_keep_measured_stream_matches_in_memory_and_keeps_the_data(tmp_path):
    cfg = tiny_config()
    x = wedged((14, 26, 22), seed=5)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, PredictOptions(overlap=4, keep_measured=True))
    for max_memory in (512 * 1024**2, 0):
        out = np.zeros_like(x)
        options = PredictOptions(overlap=4, keep_measured=True, max_memory=max_memory)
        predict_stream(model, x, out, options, scratch_dir=tmp_path)
        assert measured_error(x, out) < 2e-6
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


# ------------------------------------------------------------------------------ samples
def test_std_map_of_a_deterministic_model_is_zero():
    x = wedged((10, 20, 18))
    # a network that ignores its (noisy) input
    model = make_model(Constant(), sigma_g=0.5, mean=1.0, std=2.0)
    mean, std = np.zeros_like(x), np.ones_like(x)
    predict_stream(model, x, mean, PredictOptions(samples=4, overlap=4), std_out=std)
    assert np.all(std == 0.0) and np.all(mean == 0.75 * 2.0 + 1.0)
    # a real network without input noise: every pass is the same
    model = make_model(random_generator(tiny_config()), sigma_g=0.0, mean=100.0, std=10.0)
    one = np.zeros_like(x)
    predict_stream(model, x, one, PredictOptions(overlap=4))
    predict_stream(model, x, mean, PredictOptions(samples=3, overlap=4), std_out=std)
    assert np.all(std == 0.0)
    np.testing.assert_allclose(mean, one, rtol=1e-6, atol=1e-5)


def test_samples_of_the_identity_give_the_noise_level_without_seams():
    """Identity network: sample s is x + sigma_g * n_s exactly, if the noise of a voxel does not
    depend on the tile that reads it; the std map is then sigma_g * std_norm on average,
    the same inside tile overlaps as elsewhere, and reproducible from the seed."""
    x = wedged((16, 40, 28))
    sig, s_norm = 0.3, 5.0
    model = make_model(nn.Identity(), sigma_g=sig, mean=float(x.mean()), std=s_norm)
    n = 8
    options = PredictOptions(samples=n, overlap=6, seed=3)
    mean, std = np.zeros_like(x), np.zeros_like(x)
    predict_stream(model, x, mean, options, std_out=std)
    expected = sig * s_norm
    assert abs(float(std.mean()) / expected - 1) < 0.1
    assert abs(float((mean - x).std()) / (expected / np.sqrt(n)) - 1) < 0.1
    # a blend of different noise values would shrink the spread inside the overlaps
    profile = std.mean(axis=(0, 2))  # along the streamed (longest) axis y
    assert float(profile.min()) > 0.85 * float(profile.max())
    again_mean, again_std = np.zeros_like(x), np.zeros_like(x)
    predict_stream(model, x, again_mean, options, std_out=again_std)
    assert np.array_equal(again_mean, mean) and np.array_equal(again_std, std)
    other = PredictOptions(samples=n, overlap=6, seed=4)
    predict_stream(model, x, again_mean, other, std_out=again_std)
    assert not np.array_equal(again_std, std)


def test_predict_volume_of_samples_is_the_streamed_mean():
    x = wedged((10, 20, 18))
    model = make_model(nn.Identity(), sigma_g=0.3, mean=float(x.mean()), std=5.0)
    options = PredictOptions(samples=3, overlap=4, seed=2)
    mean = np.zeros_like(x)
    predict_stream(model, x, mean, options)
    assert np.array_equal(predict_volume(model, x, options), mean)


def test_sample_arguments_are_checked():
    x = wedged((8, 8, 8))
    model = make_model(nn.Identity())
    with pytest.raises(InputError, match="samples >= 2"):
        predict_stream(
            model, x, np.zeros_like(x), PredictOptions(samples=1, overlap=4),
            std_out=np.zeros_like(x),
        )  # fmt: skip
    with pytest.raises(InputError, match="overlap"):
        predict_stream(model, x, np.zeros_like(x), PredictOptions(tile=8, overlap=8))
    with pytest.raises(InputError, match="overlap"):  # the tile is the model's crop, 16
        predict_volume(model, x, PredictOptions(overlap=16))
    with pytest.raises(InputError, match=r"expected a volume \(z, y, x\)"):
        predict_volume(model, x[0], PredictOptions(overlap=4))
    with pytest.raises(ValueError, match="out has shape"):
        predict_stream(model, x, np.zeros((8, 8, 7), np.float32), PredictOptions(overlap=4))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("tile", 0, "tile must be >= 1"),
        ("overlap", -1, "overlap"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("samples", 0, "samples must be >= 1"),
        ("seed", -1, "seed must be >= 0"),
        ("max_memory", -1, "max_memory must be >= 0"),
    ],
)
def test_options_are_checked_in_library_terms(field, value, needle):
    with pytest.raises(InputError, match=needle):
        PredictOptions(**{field: value}).check()


# ------------------------------------------------------------------- test-time augmentation
@pytest.mark.parametrize("tilt", [(-60.0, 60.0), (-54.0, 62.0)])
def test_tta_is_the_mean_over_the_wedge_symmetries_and_commutes_with_them(tilt):
    """With one tile covering the volume, ``tta`` equals the explicit mean of
    ``R^-1 g(R y)`` over the rotations that keep the wedge, and the result turns with its
    input under each of them: ``f(R y) = R f(y)``, which no single pass of a random network
    does."""
    from cryogen.rotations import rotate, rotate_inverse
    from cryogen.wedge import wedge_symmetries

    cfg = tiny_config()
    x = torch.from_numpy(wedged((16, 16, 16), seed=4))
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()), tilt=tilt)
    rots = wedge_symmetries(*tilt)

    def plain(v):
        return torch.from_numpy(predict_volume(model, v.contiguous(), PredictOptions(overlap=0)))

    def tta(v):
        options = PredictOptions(overlap=0, tta=True)
        return torch.from_numpy(predict_volume(model, v.contiguous(), options))

    ref = torch.stack([rotate_inverse(plain(rotate(x, i)), i) for i in rots]).mean(0)
    out = tta(x)
    scale = float(out.abs().max())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6 * scale)
    for i in rots[1:]:
        torch.testing.assert_close(tta(rotate(x, i)), rotate(out, i), rtol=1e-5, atol=1e-6 * scale)
        assert not torch.allclose(plain(rotate(x, i)), rotate(plain(x), i), atol=1e-3 * scale)


@pytest.mark.parametrize("shape", [(33, 34, 35), (9, 31, 14)])
def test_tta_streaming_equals_predict_volume(shape):
    """Overlapping tiles, streamed along the longest axis (tiles permuted to the view): the
    rotation average is taken in the volume's frame, so streaming equals in memory, and it
    differs from the plain prediction."""
    cfg = tiny_config()
    x = wedged(shape, seed=2)
    model = make_model(random_generator(cfg), mean=float(x.mean()), std=float(x.std()))
    ref = predict_volume(model, x, PredictOptions(overlap=4, tta=True))
    out = np.zeros_like(x)
    predict_stream(model, x, out, PredictOptions(overlap=4, batch_size=2, tta=True))
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * scale)
    plain = predict_volume(model, x, PredictOptions(overlap=4))
    assert float(np.abs(plain - ref).max()) > 1e-3 * scale
