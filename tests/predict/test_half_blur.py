"""The output blur: streamed in place it is scipy's Gaussian; chosen from half-sets it is the
blur the truth would choose for the measured region."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from torch import nn

from cryogen.errors import InputError
from cryogen.predict import PredictOptions, predict_volume
from cryogen.predict.blur import blur_in_place
from cryogen.predict.half_blur import (
    BLUR_SIGMAS,
    BlurChoice,
    central_region,
    choose_half_set_blur,
    half_set_blur_errors,
)
from cryogen.wedge import missing_wedge_mask
from predict.fakes import make_model, wedged


@pytest.mark.parametrize(("sigma", "slab"), [(0.5, 1), (0.75, 4), (1.3, 3), (2.0, 32)])
def test_blur_in_place_is_scipys_gaussian(sigma, slab):
    x = np.random.default_rng(0).normal(size=(23, 17, 19)).astype(np.float32)
    ref = gaussian_filter(x.astype(np.float64), sigma, mode="nearest")
    blur_in_place(x, sigma, slab=slab)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-5)


def test_blur_in_place_on_a_memory_map_and_a_transposed_view(tmp_path):
    x = np.random.default_rng(1).normal(size=(12, 20, 15)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    blur_in_place(np.swapaxes(mm, 0, 1), 1.0, slab=5)
    mm.flush()
    ref = gaussian_filter(x.astype(np.float64), 1.0, mode="nearest")
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), ref, atol=1e-5)


def test_blur_zero_is_identity_and_negative_is_refused():
    x = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    blur_in_place(x, 0.0)
    np.testing.assert_array_equal(x, np.arange(27, dtype=np.float32).reshape(3, 3, 3))
    with pytest.raises(InputError, match="sigma"):
        blur_in_place(x, -1.0)
    with pytest.raises(InputError, match="blur"):
        PredictOptions(blur=-0.5).check()
    with pytest.raises(InputError, match="blur"):
        PredictOptions(blur=float("nan")).check()


def test_predict_volume_blurs_last():
    x = wedged((20, 18, 22))
    model = make_model(nn.Identity(), mean=float(x.mean()), std=float(x.std()))
    plain = predict_volume(model, x, PredictOptions(overlap=4))
    blurred = predict_volume(model, x, PredictOptions(overlap=4, blur=0.8))
    ref = gaussian_filter(plain.astype(np.float64), 0.8, mode="nearest")
    np.testing.assert_allclose(blurred, ref, atol=1e-4)


def _noisy_halves(shape, noise, seed=0):
    """A smooth wedged truth (and its unwedged form) and two halves with independent noise
    in the measured region."""
    rng = np.random.default_rng(seed)
    truth = gaussian_filter(rng.normal(size=shape), 1.5) * 10.0
    m = missing_wedge_mask(shape, -60, 60).numpy()
    wedge = lambda v: np.fft.irfftn(np.fft.rfftn(v) * m, s=shape, axes=(0, 1, 2))  # noqa: E731
    t_w = wedge(truth)
    halves = [t_w + wedge(rng.normal(scale=noise, size=shape)) for _ in range(2)]
    return truth, t_w, halves, m


def _oracle_errors(preds, t_w, m, sigmas=BLUR_SIGMAS):
    """The truth's choice: error of the blurred predictions in the measured region."""
    out = []
    for s in sigmas:
        e = 0.0
        for p in preds:
            q = gaussian_filter(p, s, mode="nearest") if s else p
            d = np.fft.rfftn(q - t_w)
            e += float((m * np.abs(d) ** 2).sum())
        out.append(e)
    return np.array(out)


@pytest.mark.parametrize("noise", [0.5, 1.5])
def test_half_set_choice_matches_the_truths_choice_for_the_mean(noise):
    """A model that returns its input: the halves' predictions are the halves, the output
    is their mean.  The half-set error is twice the truth's error of the blurred mean plus
    a constant (the halves' noise), so both choose the same blur; without the correction
    term the choice would be a half's, a wider blur."""
    _, t_w, (a, b), m = _noisy_halves((40, 36, 38), noise)
    errors = half_set_blur_errors(a, b, a, b, (-60, 60), cut_out=False)
    oracle = _oracle_errors([(a + b) / 2], t_w, m)
    i, j = int(np.argmin(errors)), int(np.argmin(oracle))
    assert abs(i - j) <= 1, (BLUR_SIGMAS[i], BLUR_SIGMAS[j])
    assert BLUR_SIGMAS[i] > 0  # noise is worth blurring
    diff = errors - 2 * oracle  # the constant
    assert np.ptp(diff) < 0.05 * (errors.max() - errors.min() + abs(diff.mean()))
    # a half's own best blur (what plain cross-validation estimates) is at least as wide
    halves_best = int(np.argmin(_oracle_errors([a, b], t_w, m)))
    assert halves_best >= j
    if noise > 1:
        assert halves_best > j


def test_a_noiseless_prediction_is_not_blurred():
    _, t_w, (a, b), _ = _noisy_halves((32, 32, 32), 1.0, seed=3)
    errors = half_set_blur_errors(t_w, t_w, a, b, (-60, 60), cut_out=False)
    choice = BlurChoice.from_errors(errors, BLUR_SIGMAS, t_w.shape)
    assert choice.sigma == 0.0
    assert choice.errors[0] == 1.0 and min(choice.errors) == 1.0
    assert "chose no blur" in choice.describe()


def test_choose_half_set_blur_on_a_cut_out_region_agrees_with_the_whole_volume():
    """A model that returns its input: the halves' own best blur, found on a central region
    (tapered, guard band) as on the whole volume."""
    _, _, (a, b), _ = _noisy_halves((48, 48, 48), 1.0, seed=5)
    a, b = a.astype(np.float32), b.astype(np.float32)
    model = make_model(nn.Identity(), mean=float(a.mean()), std=float(a.std()), crop=16)
    opts = PredictOptions(overlap=4)
    whole = choose_half_set_blur(model, a, b, opts)
    part = choose_half_set_blur(model, a, b, opts, edge=32)
    assert whole.region == (48, 48, 48) and part.region == (32, 32, 32)
    assert whole.sigma > 0
    assert abs(whole.sigma - part.sigma) <= 0.125 + 1e-9
    assert f"sigma {whole.sigma:g} voxels" in whole.describe()


def test_half_sets_of_different_shapes_are_refused():
    model = make_model(nn.Identity())
    with pytest.raises(InputError, match="one shape"):
        choose_half_set_blur(model, np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))


def test_central_region():
    assert central_region((10, 200, 161), 160) == (slice(0, 10), slice(20, 180), slice(0, 160))
