"""Properties of the metrics (CONVENTIONS.md, Metrics) and agreement with references."""

import math

import numpy as np
import pytest
import torch

from cryogen.metrics import (
    METRIC_DESCRIPTIONS,
    apply_scale_fit,
    conical_fsc,
    evaluate,
    fsc,
    psnr,
    resolution,
    scale_fit,
    ssim_global,
    ssim_windowed,
    wedge_correlation,
)
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask

skimage_metrics = pytest.importorskip("skimage.metrics")


def _radius(n, centre):
    g = np.arange(n) - centre
    return np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)


def _blob(n=32, sigma=1.5, seed=0):
    """A few small Gaussian blobs: plenty of power up to high frequencies."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    vol = np.zeros((n, n, n))
    for _ in range(6):
        c = rng.uniform(8, n - 8, size=3)
        vol += np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * sigma**2))
    return vol


def _corrupt(vol, tilt_min=-60.0, tilt_max=60.0, dtype=torch.float64):
    return apply_missing_wedge(torch.from_numpy(vol).to(dtype), tilt_min, tilt_max).double().numpy()


# --------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf(device):
    x = torch.rand(8, 9, 10, dtype=torch.float64, device=device)
    assert psnr(x, x) == math.inf
    assert psnr(x.cpu().numpy(), x.cpu().numpy()) == math.inf


def test_psnr_hand_computed():
    gt = np.array([0.0, 1.0, 2.0, 4.0]).reshape(1, 2, 2)
    pred = np.array([1.0, 1.0, 2.0, 3.0]).reshape(1, 2, 2)
    # mse = (1 + 0 + 0 + 1) / 4 = 0.5 ; peak = max(gt) = 4 -> 10 log10(16 / 0.5)
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(32.0), abs=1e-12)
    # peak is max(gt), not the data range: shifting gt down changes the value
    assert psnr(pred - 1, gt - 1) == pytest.approx(10 * math.log10(9 / 0.5), abs=1e-12)


# --------------------------------------------------------------------------- SSIM


def test_ssim_global_identity_and_hand_value():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 7, 8))
    assert ssim_global(x, x) == pytest.approx(1.0, abs=1e-15)
    gt = np.array([0.0, 0.0, 2.0, 2.0]).reshape(1, 2, 2)
    pred = np.array([0.0, 1.0, 1.0, 2.0]).reshape(1, 2, 2)
    # mu = 1, 1; var_g = 1, var_p = 0.5, cov = 0.5 (population); L = 2 -> C1 = 4e-4, C2 = 3.6e-3
    expected = (2 + 4e-4) * (1 + 3.6e-3) / ((2 + 4e-4) * (1.5 + 3.6e-3))
    assert ssim_global(pred, gt) == pytest.approx(expected, abs=1e-14)
    # data_range overrides L: L = 10 -> C1 = 0.01, C2 = 0.09
    expected10 = (2 + 0.01) * (1 + 0.09) / ((2 + 0.01) * (1.5 + 0.09))
    assert ssim_global(pred, gt, data_range=10.0) == pytest.approx(expected10, abs=1e-14)


def test_ssim_global_constant_gt_needs_data_range():
    gt = np.ones((4, 4, 4))
    with pytest.raises(ValueError, match="data_range"):
        ssim_global(gt, gt)
    assert ssim_global(gt, gt, data_range=1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(16, 16, 16), (17, 20, 23), (9, 30, 12)])
@pytest.mark.parametrize("win_size", [7, 5])
def test_ssim_windowed_matches_skimage_random(shape, win_size):
    rng = np.random.default_rng(2)
    gt = rng.random(shape)
    pred = gt + 0.3 * rng.standard_normal(shape) + 0.1
    L = float(gt.max() - gt.min())
    # reference: scikit-image 0.2x, structural_similarity(im1=gt, im2=pred), defaults
    # (uniform window, sample covariance, K1 = 0.01, K2 = 0.03, border strip cropped)
    ref = skimage_metrics.structural_similarity(gt, pred, data_range=L, win_size=win_size)
    assert ssim_windowed(pred, gt, win_size=win_size) == pytest.approx(ref, abs=1e-10)
    assert ssim_windowed(pred, gt, data_range=2.5, win_size=win_size) == pytest.approx(
        skimage_metrics.structural_similarity(gt, pred, data_range=2.5, win_size=win_size),
        abs=1e-10,
    )


def test_ssim_windowed_matches_skimage_smooth_phantom():
    gt = 3.0 * _blob(24, sigma=3.0) + 50.0  # large offset: cancellation must not hurt
    pred = _corrupt(gt)
    ref = skimage_metrics.structural_similarity(gt, pred, data_range=float(np.ptp(gt)))
    assert ssim_windowed(pred, gt) == pytest.approx(ref, abs=1e-4)
    assert ssim_windowed(torch.from_numpy(pred), torch.from_numpy(gt)) == pytest.approx(
        ref, abs=1e-4
    )
    assert ssim_windowed(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_ssim_windowed_rejects_small_volumes_and_even_windows():
    x = np.random.default_rng(0).random((6, 10, 10))
    with pytest.raises(ValueError, match="win_size"):
        ssim_windowed(x, x)
    with pytest.raises(ValueError, match="odd"):
        ssim_windowed(x, x, win_size=4)


# --------------------------------------------------------------------------- scale fit


def test_scale_fit_recovers_affine_map():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(10, 11, 12))
    a, b = 2.5, -0.7
    pred = (gt - b) / a
    fa, fb = scale_fit(pred, gt)
    assert fa == pytest.approx(a, rel=1e-12) and fb == pytest.approx(b, abs=1e-12)
    np.testing.assert_allclose(apply_scale_fit(pred, gt), gt, atol=1e-12)
    # least squares: the residual is orthogonal to pred and to the constant
    noisy = pred + 0.2 * rng.normal(size=pred.shape)
    fa, fb = scale_fit(torch.from_numpy(noisy), gt)
    res = fa * noisy + fb - gt
    assert abs(res.sum()) < 1e-9 and abs((res * noisy).sum()) < 1e-9


def test_scale_fit_constant_prediction():
    gt = np.arange(27.0).reshape(3, 3, 3)
    a, b = scale_fit(np.full((3, 3, 3), 5.0), gt)
    assert (a, b) == (1.0, pytest.approx(gt.mean() - 5.0))


# --------------------------------------------------------------------------- FSC


def _fsc_full_reference(a, b, axis=None, half_angle=90.0):
    """Straightforward FSC over the full fftn, shells of width 1 / min(shape)."""
    n = min(a.shape)
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(s) for s in a.shape), indexing="ij")
    r = np.sqrt(kz**2 + ky**2 + kx**2)
    idx = np.rint(r * n).astype(int)
    keep = idx <= n // 2
    if axis is not None:
        k_ax = np.abs({"z": kz, "y": ky, "x": kx}[axis])
        keep &= k_ax >= r * math.cos(math.radians(half_angle)) - 1e-12
    out = []
    for i in range(n // 2 + 1):
        s = keep & (idx == i)
        num = np.sum(fa[s] * fb[s].conj()).real
        den = math.sqrt(np.sum(abs(fa[s]) ** 2) * np.sum(abs(fb[s]) ** 2))
        out.append(num / den if den > 0 else 0.0)
    return np.arange(n // 2 + 1) / n, np.array(out)


@pytest.mark.parametrize("shape", [(16, 16, 16), (15, 17, 19), (12, 20, 14), (16, 16, 15)])
def test_fsc_half_spectrum_matches_full_spectrum(shape):
    rng = np.random.default_rng(4)
    a = rng.normal(size=shape)
    b = a + rng.normal(size=shape)
    f_ref, c_ref = _fsc_full_reference(a, b)
    f, c = fsc(a, b)
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(c, c_ref, atol=1e-12)
    for axis in "zyx":
        _, c_ref = _fsc_full_reference(a, b, axis, 30.0)
        _, c = conical_fsc(a, b, axis=axis, half_angle=30.0)
        np.testing.assert_allclose(c, c_ref, atol=1e-12)


def test_fsc_self_is_one():
    a = np.random.default_rng(5).normal(size=(16, 18, 20))
    f, c = fsc(a, a)
    assert f[0] == 0 and f[-1] == pytest.approx(0.5) and f.size == 16 // 2 + 1
    np.testing.assert_allclose(c, 1.0, atol=1e-12)
    f, c = fsc(a, a, n_shells=5)
    np.testing.assert_allclose(f, [0, 0.125, 0.25, 0.375, 0.5])
    np.testing.assert_allclose(c, 1.0, atol=1e-12)
    _, c = conical_fsc(a, a, axis="x", half_angle=20)
    np.testing.assert_allclose(c, 1.0, atol=1e-12)
    assert resolution(*fsc(a, a), voxel_size=3.0) == pytest.approx(6.0)


def test_fsc_decays_with_noise():
    gt = _blob(32, sigma=2.0)
    noisy = gt + 0.05 * np.random.default_rng(6).normal(size=gt.shape)
    f, c = fsc(noisy, gt)
    assert c[1] > 0.95 and c[-1] < 0.3
    # broadly decreasing: each quarter of the curve is below the previous one
    q = np.array_split(c[1:], 4)
    assert all(q[i].mean() > q[i + 1].mean() for i in range(3))
    res = resolution(f, c)
    assert 2.0 < res < 32.0


def test_conical_fsc_shows_anisotropy_of_the_wedge():
    gt = _blob(32, sigma=1.5)
    cor = _corrupt(gt)
    f, cz = conical_fsc(cor, gt, axis="z", half_angle=30)
    _, cx = conical_fsc(cor, gt, axis="x", half_angle=30)
    assert np.all(cx[1:] > 0.99)  # the x cone lies inside the measured sector
    assert np.all(np.abs(cz[1:]) < 0.05)  # the z cone lies inside the missing wedge
    res_z, res_x = resolution(f, cz), resolution(f, cx)
    assert res_z > res_x
    assert res_x == pytest.approx(2.0) and res_z == pytest.approx(32.0)


# --------------------------------------------------------------------------- resolution


def test_resolution_interpolates_and_handles_edges():
    f = np.arange(9) / 16
    c = np.array([1.0, 0.9, 0.8, 0.6, 0.4, 0.3, 0.6, 0.1, 0.0])
    # first crossing of 0.5 between shells 3 (0.6) and 4 (0.4): f = 3.5 / 16
    assert resolution(f, c, voxel_size=2.0) == pytest.approx(2.0 * 16 / 3.5)
    assert resolution(f, c, threshold=0.143) == pytest.approx(16 / (6 + (0.6 - 0.143) / 0.5))
    assert resolution(f, np.ones(9), voxel_size=1.5) == pytest.approx(3.0)  # Nyquist
    assert resolution(f, np.r_[1.0, np.zeros(8)], voxel_size=1.5) == pytest.approx(24.0)  # box
    # NaN shells are skipped
    c_nan = c.copy()
    c_nan[4] = np.nan
    assert resolution(f, c_nan) == pytest.approx(16 / (3 + 0.1 / 0.3 * 2))


# --------------------------------------------------------------------------- wedge correlation


@pytest.mark.parametrize("tilts", [(-60, 60), (-54, 62)])
def test_wedge_correlation_zero_for_corrupted_one_for_truth(tilts):
    gt = _blob(24, sigma=1.5) + 0.1 * np.random.default_rng(7).normal(size=(24,) * 3)
    assert wedge_correlation(gt, gt, *tilts) == pytest.approx(1.0, abs=1e-12)
    assert wedge_correlation(-gt, gt, *tilts) == pytest.approx(-1.0, abs=1e-12)
    assert wedge_correlation(_corrupt(gt, *tilts), gt, *tilts) == 0.0
    # a float32 corruption leaves rounding residue in the wedge: still 0
    assert wedge_correlation(_corrupt(gt, *tilts, dtype=torch.float32), gt, *tilts) == 0.0
    # restoring only the wedge content scores 1 whatever the measured part is
    missing_part = gt - _corrupt(gt, *tilts)
    assert wedge_correlation(missing_part + 5.0, gt, *tilts) == pytest.approx(1.0, abs=1e-10)


def test_wedge_correlation_uses_only_the_wedge():
    shape = (16, 16, 16)
    rng = np.random.default_rng(8)
    gt = rng.normal(size=shape)
    other = rng.normal(size=shape)
    m = missing_wedge_mask(shape, -60, 60, rfft=False, dtype=torch.float64).numpy()
    spec = np.where(m == 0, np.fft.fftn(gt), np.fft.fftn(other))
    pred = np.fft.ifftn(spec).real  # wedge of gt, measured part of another volume
    assert wedge_correlation(pred, gt) == pytest.approx(1.0, abs=1e-10)
    assert abs(wedge_correlation(other, gt)) < 0.1


# --------------------------------------------------------------------------- evaluate


def test_evaluate_keys_scale_fit_and_checks():
    gt = _blob(24, sigma=1.5)
    cor = _corrupt(gt)
    out = evaluate(2.0 * cor + 1.0, gt, voxel_size=2.0)
    for key in (
        "psnr",
        "ssim_global",
        "ssim_windowed",
        "wedge_corr",
        "res_z",
        "res_x",
        "fsc_res",
        "scale_fit",
        "scale",
        "offset",
        "voxel_size",
        "tilt_min",
        "tilt_max",
    ):
        assert key in out
    assert set(out) <= set(METRIC_DESCRIPTIONS)
    assert out["scale_fit"] is True
    assert out["scale"] == pytest.approx(0.5) and out["offset"] == pytest.approx(-0.5)
    assert out["psnr"] == pytest.approx(psnr(cor, gt), abs=1e-8)
    assert out["ssim_global"] == pytest.approx(ssim_global(cor, gt), abs=1e-10)
    assert out["wedge_corr"] == 0.0
    assert out["res_z"] > out["res_x"] == pytest.approx(4.0)  # Nyquist at 2 A / voxel
    raw = evaluate(2.0 * cor + 1.0, gt, scale_fit=False)
    assert raw["scale_fit"] is False and raw["scale"] == 1.0 and raw["offset"] == 0.0
    assert raw["psnr"] < out["psnr"]
    perfect = evaluate(torch.from_numpy(3 * gt - 2), torch.from_numpy(gt))
    assert perfect["psnr"] == math.inf or perfect["psnr"] > 250
    assert perfect["ssim_global"] == pytest.approx(1.0) and perfect["wedge_corr"] > 0.999999

    with pytest.raises(ValueError, match=r"\(24, 24, 24\).*\(24, 24, 23\)"):
        evaluate(gt, gt[..., :23])
    bad = gt.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(bad, gt)


# --------------------------------------------------------------------------- calibration


@pytest.mark.slow
@pytest.mark.parametrize("centre", ["(n-1)/2", "n/2"])
def test_calibration_hollow_sphere(centre):
    """CONVENTIONS.md: hollow sphere (outer diameter 70, shell 4, 140^3) with the [-60, 60]
    wedge scores PSNR 21.87 dB and global SSIM 0.807 without the scale fit."""
    n = 140
    r = _radius(n, (n - 1) / 2 if centre == "(n-1)/2" else n / 2)
    gt = ((r <= 35.0) & (r >= 31.0)).astype(np.float64)
    out = evaluate(_corrupt(gt), gt, scale_fit=False)
    assert out["psnr"] == pytest.approx(21.87, abs=0.05)
    assert out["ssim_global"] == pytest.approx(0.807, abs=0.003)
    assert out["wedge_corr"] == 0.0
    assert out["res_z"] > out["res_x"]
