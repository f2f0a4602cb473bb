"""Tilt series, weighted back-projection, binning, CTF deconvolution and masks (cryogen.tomo).

The geometry tests tie the projector and the reconstruction to ``missing_wedge_mask``: a
reconstruction from a simulated tilt series must have its missing wedge exactly where the
mask puts it, also for an asymmetric range, where a sign or mirror error would show.
"""

import math
import time
import tracemalloc

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.phantoms import sphere
from cryogen.tomo import (
    CTFParams,
    backproject,
    bin_factor_for,
    bin_volume,
    binned_shape,
    ctf,
    deconvolve,
    deconvolve_chunked,
    fourier_crop,
    iter_wbp_chunks,
    make_mask,
    project,
    ramp_filter,
    reconstruct_wbp,
    simulate_tilt_series,
    tilt_angles,
    tilt_weights,
    wiener_filter,
)
from cryogen.tomo.ctf import radial_frequency
from cryogen.tomo.wbp import rows_per_chunk
from cryogen.train.data import SubtomoDataset, sample_origins
from cryogen.wedge import missing_wedge_mask

N = 32


# ------------------------------------------------------------------------------ fixtures
def _grid(n=N):
    c = torch.arange(n, dtype=torch.float32) - n // 2
    return torch.meshgrid(c, c, c, indexing="ij")


def blobs(seed=0, n=N, count=10, spread=10.0, sizes=(1.5, 3.0)):
    """Gaussian blobs inside the central sphere (nothing leaves the field of view)."""
    rng = np.random.default_rng(seed)
    z, y, x = _grid(n)
    v = torch.zeros(n, n, n)
    for _ in range(count):
        p = rng.uniform(-spread, spread, 3)
        s = rng.uniform(*sizes)
        v += torch.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * s * s))
    return v


def random_phantom(seed=0, n=N):
    """Band-limited noise in a soft sphere: power in every direction of Fourier space."""
    g = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(n)
    kz, ky, kx = torch.meshgrid(k, k, k, indexing="ij")
    r = torch.sqrt(kz**2 + ky**2 + kx**2)
    noise = torch.randn((n, n, n), generator=g)
    smooth = torch.fft.ifftn(torch.fft.fftn(noise) * torch.exp(-((r / 0.3) ** 2))).real
    z, y, x = _grid(n)
    rad = torch.sqrt(z**2 + y**2 + x**2)
    window = 0.5 * (1 + torch.cos(math.pi * torch.clamp((rad - 8) / 4, 0, 1)))
    out = smooth * window
    return out / out.std()


def corr(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def shells(n=N):
    k = torch.fft.fftfreq(n)
    kz, ky, kx = torch.meshgrid(k, k, k, indexing="ij")
    return torch.round(torch.sqrt(kz**2 + ky**2 + kx**2) * n).long()


def fold_angle(n=N):
    """Angle t of every frequency, tan t = -kz / kx folded into (-90, 90] (CONVENTIONS.md)."""
    k = torch.fft.fftfreq(n, dtype=torch.float64)
    kz, _, kx = torch.meshgrid(k, k, k, indexing="ij")
    t = torch.rad2deg(torch.atan2(-kz, kx))
    t = torch.where(t > 90, t - 180, t)
    return torch.where(t <= -90, t + 180, t)


# ------------------------------------------------------------------------------ angles
def test_tilt_angles_end_exactly_at_the_range():
    assert np.allclose(tilt_angles(-60, 60, 3), np.arange(-60, 61, 3))
    a = tilt_angles(-54, 62, 3)
    assert a[0] == -54 and a[-1] == 62 and np.all(np.diff(a) > 0) and np.diff(a).max() <= 3
    with pytest.raises(ValueError):
        tilt_angles(10, -10, 3)


def test_tilt_weights_cover_the_range_in_any_order():
    a = tilt_angles(-54, 62, 3)
    w = tilt_weights(a)
    # interior tilts cover the range, the two ends half a step outside it too
    assert math.isclose(w.sum(), math.radians(62 + 54) + math.radians(3 + 2) / 2, rel_tol=1e-9)
    assert np.allclose(tilt_weights(a[::-1]), w[::-1])


def test_ramp_filter_is_the_ramp():
    h = ramp_filter(256, dtype=torch.float64)
    k = torch.fft.rfftfreq(256, dtype=torch.float64)
    assert torch.allclose(h[4:], k[4:], atol=2e-3)  # |k| away from DC
    assert 0 < float(h[0]) < 1e-2  # a small, positive weight at DC


# ------------------------------------------------------------------------------ geometry
def test_projection_geometry_of_a_point(device):
    """At +30 deg a point at z = +6 lands at u = -z sin t = -3, one at x = +6 at 6 cos t."""
    vol = torch.zeros(N, N, N, device=device)
    vol[N // 2 + 6, N // 2, N // 2] = 1.0  # z = +6
    vol[N // 2, N // 2 + 4, N // 2 + 6] = 1.0  # x = +6, another row
    img = project(vol, [30.0])[0]
    assert img.device.type == torch.device(device).type
    u = torch.arange(N, dtype=torch.float32, device=device) - N // 2
    row0, row4 = img[N // 2], img[N // 2 + 4]
    assert float((row0 * u).sum() / row0.sum()) == pytest.approx(-3.0, abs=0.15)  # z-mirror: +3
    assert float((row4 * u).sum() / row4.sum()) == pytest.approx(
        6 * math.cos(math.pi / 6), abs=0.15
    )
    assert float(row0.sum()) == pytest.approx(1.0, rel=0.05)  # a line integral keeps the mass


def test_projection_at_zero_tilt_is_the_sum_over_z():
    vol = blobs()
    assert torch.allclose(project(vol, [0.0])[0], vol.sum(0), atol=1e-4)


def test_backprojection_is_the_adjoint_of_projection_at_zero_tilt():
    g = torch.Generator().manual_seed(1)
    vol = torch.randn((8, 6, 10), generator=g)
    img = torch.randn((1, 6, 10), generator=g)
    lhs = (project(vol, [0.0]) * img).sum()
    rhs = (vol * backproject(img, [0.0], 8)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-5)


@pytest.mark.parametrize("tilt_range", [(-60, 60), (-54, 62)])
def test_reconstruction_has_the_missing_wedge_of_missing_wedge_mask(tilt_range):
    """Per shell, the power inside the wedge (frequencies more than 1 Fourier pixel inside
    it) is under 5% of the power where missing_wedge_mask says measured."""
    tmin, tmax = tilt_range
    ph = random_phantom(0)
    a = tilt_angles(tmin, tmax, 3)
    rec = reconstruct_wbp(project(ph, a), a, thickness=N)
    power = torch.fft.fftn(rec).abs() ** 2
    measured = missing_wedge_mask((N, N, N), tmin, tmax, rfft=False) == 1
    deep_inside = missing_wedge_mask((N, N, N), tmin, tmax, rfft=False, soft_edge=1.0) == 0
    shell = shells()
    for s in range(3, 15):
        inside = power[(shell == s) & deep_inside].mean()
        outside = power[(shell == s) & measured].mean()
        assert float(inside / outside) < 0.05, (s, float(inside / outside))


def test_asymmetric_range_is_not_mirrored():
    """With [-54, 62] the band 55..61 deg is measured and -61..-55 is not: a sign or mirror
    error of the projector (or of the back-projector) would swap them."""
    ph = random_phantom(1)
    a = tilt_angles(-54, 62, 2)
    rec = reconstruct_wbp(project(ph, a), a, thickness=N)
    power = torch.fft.fftn(rec).abs() ** 2
    t, shell = fold_angle(), shells()
    band = (shell >= 4) & (shell <= 14)
    right = power[band & (t > 55) & (t < 61)].mean()
    mirror = power[band & (t > -61) & (t < -55)].mean()
    assert float(right / mirror) > 3, float(right / mirror)  # a mirror error gives ~1/6
    # the same tilt series with the images in the opposite order reconstructs the same
    ts = project(ph, a)
    rev = reconstruct_wbp(ts.flip(0), a[::-1].copy(), thickness=N)
    assert torch.allclose(rev, rec, atol=1e-4)


@pytest.mark.parametrize("tilt_range", [(-60, 60), (-54, 62)])
@pytest.mark.parametrize("name", ["blobs", "sphere"])
def test_reconstruct_of_simulate_correlates_with_the_phantom(tilt_range, name):
    ph = blobs(0) if name == "blobs" else sphere(N, outer_diameter=20, thickness=3)
    a = tilt_angles(*tilt_range, 3)
    rec = reconstruct_wbp(simulate_tilt_series(ph, a), a, thickness=N)
    assert corr(rec, ph) >= 0.8


def test_reconstruction_is_on_the_scale_of_the_object():
    ph = blobs(2)
    a = tilt_angles(-60, 60, 3)
    rec = reconstruct_wbp(project(ph, a), a, thickness=N)
    ideal = torch.fft.irfftn(
        torch.fft.rfftn(ph) * missing_wedge_mask((N, N, N), -60, 60), s=(N, N, N)
    )
    gain = float((rec * ideal).sum() / (ideal * ideal).sum())
    assert 0.8 < gain < 1.1, gain


def test_non_cubic_reconstruction_and_chunks_are_exact():
    ph = blobs(3)[8:24]  # (16, 32, 32): a slab
    a = tilt_angles(-60, 60, 5)
    ts = project(ph, a)
    whole = reconstruct_wbp(ts, a, thickness=16, chunk_bytes=1 << 40)
    rows = reconstruct_wbp(ts, a, thickness=16, chunk_bytes=1)  # one row per chunk
    assert whole.shape == (16, N, N)
    assert torch.allclose(whole, rows, atol=1e-5)
    assert corr(whole, ph) > 0.8


def test_reconstruction_of_512x512x150_stays_within_bounded_memory(tmp_path):
    """A 512 x 512 x 150 tomogram (157 MB) is written chunk by chunk into a memory map:
    every chunk stays under its budget and the Python heap never holds the tomogram."""
    n_tilts, ny, nx, nz = 5, 512, 512, 150
    budget = 32 * 1024**2
    rng = np.random.default_rng(0)
    ts = rng.standard_normal((n_tilts, ny, nx), dtype=np.float32)
    angles = [-60.0, -30.0, 0.0, 30.0, 60.0]
    rows = rows_per_chunk(nz, nx, n_tilts, nx, budget)
    assert 1 <= rows < ny
    seen = 0
    for sl, block in iter_wbp_chunks(ts[:, :64], angles, thickness=nz, chunk_bytes=budget):
        assert block.shape == (nz, sl.stop - sl.start, nx)
        assert 3 * block.numel() * block.element_size() <= budget
        seen += sl.stop - sl.start
    assert seen == 64
    out = np.lib.format.open_memmap(
        tmp_path / "tomo.npy", mode="w+", dtype=np.float32, shape=(nz, ny, nx)
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        reconstruct_wbp(ts, angles, thickness=nz, out=out, chunk_bytes=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    assert peak < 16 * 1024**2, peak  # the tomogram alone is 157 MB
    assert elapsed < 20, elapsed
    # spot check against an in-memory reconstruction of a few rows
    part = reconstruct_wbp(ts[:, 200:203], angles, thickness=nz).numpy()
    assert np.allclose(out[:, 200:203], part, atol=1e-4)


# ------------------------------------------------------------------------------ binning
def test_fourier_crop_halves_and_keeps_low_frequencies():
    x = random_phantom(4) + 0.3
    y = fourier_crop(x, (16, 16, 16))
    assert y.shape == (16, 16, 16)
    assert float(y.mean()) == pytest.approx(float(x.mean()), abs=1e-5)
    fx, fy = torch.fft.fftn(x), torch.fft.fftn(y)
    idx = torch.cat((torch.arange(0, 8), torch.arange(-7, 0)))  # below the new Nyquist
    sub = fx[idx][:, idx][:, :, idx] / 8.0  # DFT scale: (16/32)^3 of the sum
    assert torch.allclose(fy[idx][:, idx][:, :, idx], sub, atol=1e-3 * float(fx.abs().max()))
    # a constant stays the same constant; a non-cubic crop works per axis
    assert torch.allclose(fourier_crop(torch.full((6, 10, 12), 2.5), (3, 5, 6)), torch.tensor(2.5))
    assert fourier_crop(x, (31, 16, 9)).shape == (31, 16, 9)


def test_bin_volume_by_slabs_equals_the_whole_crop():
    x = random_phantom(5).numpy()
    out, factor = bin_volume(x, 2.0, slab_bytes=1)  # one slice per slab
    assert factor == 2.0
    assert np.allclose(out, fourier_crop(torch.from_numpy(x), (16, 16, 16)).numpy(), atol=1e-5)
    assert binned_shape((150, 512, 512), 4) == (38, 128, 128)
    assert bin_factor_for(2.5, 10.0) == 4.0
    with pytest.raises(ValueError, match="only bins"):
        bin_factor_for(10.0, 5.0)


# ------------------------------------------------------------------------------ CTF
def test_ctf_has_isonets_sign_and_first_zero():
    p = CTFParams(defocus=30000.0, voltage=300.0, cs=2.7, amplitude_contrast=0.07)
    k = torch.linspace(0, 0.05, 2001, dtype=torch.float64)
    c = ctf(k, p)
    assert float(c[0]) == pytest.approx(0.07)
    # first zero where chi = pi - asin(A) ~ pi lambda df k^2 (Cs negligible at low k)
    lam = 0.019687  # Å at 300 kV
    k0 = math.sqrt((math.pi - math.asin(0.07)) / (math.pi * lam * 30000.0))
    first = float(k[torch.nonzero(c < 0)[0]])
    assert first == pytest.approx(k0, rel=0.01)


def test_wiener_filter_behaves_as_documented():
    p = CTFParams(defocus=20000.0)
    f, c, w = wiener_filter(10.0, p, snrfalloff=0.0, deconvstrength=6.0)
    assert float(w[0]) == pytest.approx(0.0, abs=1e-4)  # the high-pass removes DC
    strong = (c.abs() > 0.5) & (f > 0.05)
    assert torch.allclose(w[strong], 1.0 / c[strong], rtol=1e-3)  # high SNR: 1 / CTF
    _, _, weak = wiener_filter(10.0, p, snrfalloff=1.0, deconvstrength=-3.0)
    assert float(weak.abs().max()) < 2e-3  # low SNR: the filter shrinks towards 0


def test_deconv_with_zero_strength_and_a_flat_ctf_returns_the_input():
    """deconvstrength 0, no SNR fall-off and a flat CTF (no defocus, no Cs, amplitude 1):
    the filter is a constant, so the output is the input up to scale (then renormalised)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn((N, N, N), generator=g) * 3 + 1
    flat = CTFParams(defocus=0.0, cs=0.0, amplitude_contrast=1.0)
    kw = {"snrfalloff": 0.0, "deconvstrength": 0.0, "highpassnyquist": 1e-6}
    raw = deconvolve(x, 10.0, flat, normalise=False, **kw)
    assert torch.allclose(raw, (x - x.mean()) * (1 / 1.5), atol=1e-4)  # W = 1 / (1 + 1/2)
    assert torch.allclose(deconvolve(x, 10.0, flat, **kw), x, atol=1e-4)
    out = np.zeros((N, N, N), np.float32)
    deconvolve_chunked(x.numpy(), out, 10.0, flat, chunk_size=16, overlap=0.5, **kw)
    assert np.allclose(out, x.numpy(), atol=1e-3)


def _apply_ctf(v, pixel, params):
    c = radial_frequency(v.shape, pixel, rfft=True, device=None)
    return torch.fft.irfftn(torch.fft.rfftn(v) * ctf(c, params).float(), s=v.shape)


def test_deconvolution_undoes_the_ctf():
    v = blobs(6, sizes=(1.0, 2.5))
    params = CTFParams(defocus=30000.0)
    y = _apply_ctf(v, 10.0, params)
    d = deconvolve(y, 10.0, params)
    assert corr(d, v) > corr(y, v) + 0.1
    assert float(d.mean()) == pytest.approx(float(y.mean()), abs=1e-4)
    assert float(d.std()) == pytest.approx(float(y.std()), rel=1e-4)


def test_chunked_deconvolution_agrees_with_the_whole_volume():
    v = blobs(7, sizes=(1.0, 2.5))
    params = CTFParams(defocus=30000.0)
    y = _apply_ctf(v, 10.0, params).numpy()
    whole = deconvolve(torch.from_numpy(y), 10.0, params).numpy()
    overlapped, plain = np.zeros_like(y), np.zeros_like(y)
    deconvolve_chunked(y, overlapped, 10.0, params, chunk_size=24, overlap=0.5)
    deconvolve_chunked(y, plain, 10.0, params, chunk_size=24, overlap=0.0)
    assert corr(overlapped, whole) > 0.98
    assert corr(overlapped, whole) > corr(plain, whole)  # the overlap removes seams
    assert overlapped.mean() == pytest.approx(y.mean(), abs=1e-4)
    assert overlapped.std() == pytest.approx(y.std(), rel=1e-3)


def test_simulated_ctf_and_noise():
    v = blobs(8)
    a = tilt_angles(-60, 60, 10)
    clean = simulate_tilt_series(v, a)
    with_ctf = simulate_tilt_series(v, a, pixel_size=10.0, ctf_params=CTFParams(defocus=30000))
    assert corr(with_ctf, clean) < 0.9  # the CTF changes the images
    noisy = simulate_tilt_series(v, a, snr=0.5, seed=1)
    again = simulate_tilt_series(v, a, snr=0.5, seed=1)
    assert torch.equal(noisy, again)
    assert float(clean.var() / (noisy - clean).var()) == pytest.approx(0.5, rel=0.05)
    dosed = simulate_tilt_series(v, a, pixel_size=10.0, dose=100.0, seed=2)
    assert 0.5 < corr(dosed, clean) < 0.999


# ------------------------------------------------------------------------------ masks
def _particle_phantom(seed=0):
    """Bright balls in weak noise, and the voxels of the balls."""
    rng = np.random.default_rng(seed)
    z, y, x = _grid()
    v = torch.zeros(N, N, N)
    inside = torch.zeros(N, N, N, dtype=torch.bool)
    for p in ([-7, -6, 5], [6, 7, -6], [0, -8, -8], [-5, 8, 8]):
        ball = (z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2 <= 9
        inside |= ball
        v[ball] = 1.0
    v = v + 0.05 * torch.from_numpy(rng.standard_normal((N, N, N)).astype(np.float32))
    return v, inside


def test_make_mask_covers_the_particles():
    # patch_size 2: IsoNet's 4 makes 9^3 filters, more than half of this small binned volume
    v, inside = _particle_phantom()
    opts = {"z_crop": 0.0, "patch_size": 2}
    mask = make_mask(v, density_percentage=50, std_percentage=50, protein="bright", **opts)
    assert mask.dtype == torch.uint8 and mask.shape == v.shape
    assert float(mask[inside].float().mean()) > 0.95
    assert float(mask.float().mean()) < 0.6  # and does not simply cover everything
    # dark protein (IsoNet's convention) on the negated tomogram gives the same mask
    dark = make_mask(-v, density_percentage=50, std_percentage=50, **opts)
    assert torch.equal(dark, mask)
    # an array (as a memory map is) gives the same mask as a tensor
    assert torch.equal(make_mask(v.numpy(), protein="bright", **opts), mask)


def test_make_mask_percentages_and_z_crop():
    v, _ = _particle_phantom(1)
    full = make_mask(v, density_percentage=100, std_percentage=100, z_crop=0.0)
    assert bool((full == 1).all())
    cropped = make_mask(v, density_percentage=100, std_percentage=100, z_crop=0.25)
    assert bool((cropped[:4] == 0).all()) and bool((cropped[-4:] == 0).all())
    assert bool((cropped[4:-4] == 1).all())
    small = make_mask(v, density_percentage=20, std_percentage=100, z_crop=0.0, protein="bright")
    large = make_mask(v, density_percentage=80, std_percentage=100, z_crop=0.0, protein="bright")
    assert float(small.float().mean()) < float(large.float().mean())
    assert bool((small <= large).all())


# ------------------------------------------------------------------------------ training
def test_an_empty_mask_stops_training_with_a_clear_error():
    vol = blobs(9).numpy()
    empty = np.zeros_like(vol, dtype=np.uint8)
    with pytest.raises(InputError) as err:
        SubtomoDataset(
            [vol], subtomo_size=16, n_subtomos=4, crop_size=8, masks=[empty], mask_threshold=0.4
        )
    text = str(err.value)
    assert "found only 0 of the 4 subtomograms" in text
    assert "mask_threshold" in text and "n_subtomos" in text
    assert "\n" not in text


def test_a_sparse_mask_reports_how_many_were_found():
    mask = np.zeros((40, 40, 40), np.uint8)
    mask[:18, :18, :18] = 1  # one corner: few cubes of 16^3 reach 90 %
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=r"found only \d+ of the 50 subtomograms"):
        sample_origins(mask.shape, 16, 50, rng, mask=mask, threshold=0.9, max_tries=2)
