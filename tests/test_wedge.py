"""Properties of the missing-wedge mask M and the operator T_M (CONVENTIONS.md)."""

import math

import pytest
import torch

from cryogen.wedge import (
    apply_missing_wedge,
    kept_fraction,
    missing_wedge_mask,
    wedge_operator,
)

SHAPES = [(16, 16, 16), (17, 15, 18), (12, 20, 9)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tilts", [(-60, 60), (-54, 62), (-45, 30)])
def test_idempotent_and_self_adjoint(shape, tilts, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *shape, generator=g, dtype=torch.float64).to(device)
    z = torch.randn(2, *shape, generator=g, dtype=torch.float64).to(device)
    m = missing_wedge_mask(shape, *tilts, device=device, dtype=torch.float64)
    tx = wedge_operator(x, m)
    assert tx.dtype == x.dtype and tx.device == x.device and tx.shape == x.shape
    torch.testing.assert_close(wedge_operator(tx, m), tx, atol=1e-12, rtol=0)
    lhs = (wedge_operator(x, m) * z).sum()
    rhs = (x * wedge_operator(z, m)).sum()
    assert abs(float(lhs - rhs)) < 1e-9 * float(x.abs().sum())
    # linear
    torch.testing.assert_close(
        wedge_operator(2 * x - 3 * z, m), 2 * tx - 3 * wedge_operator(z, m), atol=1e-10, rtol=0
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_full_spectrum_mask_is_hermitian_so_output_is_real(shape):
    m = missing_wedge_mask(shape, -54, 62, rfft=False, dtype=torch.float64)
    x = torch.randn(*shape, dtype=torch.float64)
    y = torch.fft.ifftn(torch.fft.fftn(x) * m)
    assert float(y.imag.abs().max()) < 1e-12
    torch.testing.assert_close(y.real, apply_missing_wedge(x, -54, 62), atol=1e-12, rtol=0)
    # the half-spectrum mask is the first x//2+1 columns of the full one
    mh = missing_wedge_mask(shape, -54, 62, rfft=True, dtype=torch.float64)
    torch.testing.assert_close(mh, m[..., : shape[-1] // 2 + 1])


def test_kept_fraction_140():
    assert kept_fraction((140, 140, 140), -60, 60) == pytest.approx(0.711, abs=0.002)


def test_full_range_keeps_everything_and_dc_always_kept():
    assert kept_fraction((16, 16, 16), -90, 90) == 1.0
    m = missing_wedge_mask((16, 16, 16), -1, 1, rfft=False)
    assert m[0, :, 0].eq(1).all()  # kz = kx = 0 line, every ky
    x = torch.randn(16, 16, 16, dtype=torch.float64)
    assert float(apply_missing_wedge(x, -10, 10).mean()) == pytest.approx(float(x.mean()))


def _angle_of(kz, kx):
    t = math.degrees(math.atan2(-kz, kx))
    if t > 90:
        t -= 180
    if t <= -90:
        t += 180
    return t


@pytest.mark.parametrize("tilts", [(-54, 62), (-60, 60), (-30, 45)])
def test_asymmetric_ranges_mask_the_right_side(tilts):
    n = 33
    m = missing_wedge_mask((n, 4, n), *tilts, rfft=False)
    freqs = torch.fft.fftfreq(n)
    for iz in range(n):
        for ix in range(n):
            kz, kx = float(freqs[iz]), float(freqs[ix])
            if kz == 0 and kx == 0:
                continue
            t = _angle_of(kz, kx)
            assert bool(m[iz, 0, ix]) == (tilts[0] <= t <= tilts[1]), (kz, kx, t)
    # a frequency tilted +58 deg (kz = -tan(58) kx) is kept for -54/+62 but a -58 one is not
    m = missing_wedge_mask((n, 4, n), -54, 62, rfft=False)
    kx = 4 / n
    iz_pos = round(-math.tan(math.radians(58)) * kx * n) % n
    iz_neg = round(math.tan(math.radians(58)) * kx * n) % n
    assert m[iz_pos, 0, 4] == 1 and m[iz_neg, 0, 4] == 0


def test_mask_constant_along_y_and_binary():
    m = missing_wedge_mask((10, 7, 12), -60, 60)
    assert m.shape == (10, 7, 7)
    assert torch.equal(m, m[:, :1].expand_as(m))
    assert set(m.unique().tolist()) <= {0.0, 1.0}


def test_wedge_corrupts_beam_direction_blur():
    # a thin plate in the xy-plane (normal along z) has its spectrum along kz: the wedge removes
    # most of it, while a plate with normal along x keeps its spectrum.
    x = torch.zeros(32, 32, 32, dtype=torch.float64)
    x[15:17] = 1
    y = torch.zeros_like(x)
    y[..., 15:17] = 1
    assert float((apply_missing_wedge(x) - x).norm()) > 0.5 * float(x.norm())
    assert float((apply_missing_wedge(y) - y).norm()) < 1e-9


def test_soft_edge():
    hard = missing_wedge_mask((32, 8, 32), -60, 60)
    soft = missing_wedge_mask((32, 8, 32), -60, 60, soft_edge=3)
    assert float(soft.min()) >= 0 and float(soft.max()) <= 1
    assert torch.all(soft >= hard)  # kept region untouched, taper only outside it
    assert float(((soft > 0) & (soft < 1)).float().mean()) > 0


def test_differentiable_and_dtype_kept(device):
    x = torch.randn(1, 8, 8, 8, device=device, requires_grad=True)
    y = apply_missing_wedge(x)
    assert y.dtype == torch.float32
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bad", [dict(tilt_min=60, tilt_max=-60), dict(tilt_min=-100, tilt_max=60)])
def test_bad_ranges(bad):
    with pytest.raises(ValueError, match="tilt range"):
        missing_wedge_mask((8, 8, 8), **bad)


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match="does not match"):
        wedge_operator(torch.zeros(8, 8, 8), missing_wedge_mask((8, 8, 10)))


# ------------------------------------------------------------------------------ symmetries
@pytest.mark.parametrize(
    "tilt, expected",
    [((-60.0, 60.0), 4), ((-45.0, 45.0), 4), ((-54.0, 62.0), 2), ((0.0, 60.0), 2)],
)
def test_wedge_symmetries_are_the_rotations_that_keep_wedged_data_wedged(tilt, expected):
    """A rotation is returned iff it maps every volume with the wedge to one with the same
    wedge (``T_M R T_M x = R T_M x``), on even and odd grids; the identity comes first."""
    from cryogen.rotations import CUBE_ROTATIONS, EXCLUDED_ROTATIONS
    from cryogen.wedge import wedge_symmetries

    sym = wedge_symmetries(*tilt)
    assert len(sym) == expected and sym[0] == 0
    if tilt[0] == -tilt[1]:  # symmetric: the four rotations the paper leaves out of training
        assert sym == EXCLUDED_ROTATIONS
    g = torch.Generator().manual_seed(3)
    for n in (16, 17):
        mask = missing_wedge_mask((n, n, n), *tilt)
        y = wedge_operator(torch.randn(n, n, n, generator=g, dtype=torch.float64), mask)
        for i, r in enumerate(CUBE_ROTATIONS):
            ry = r.apply(y)
            keeps = torch.allclose(wedge_operator(ry, mask), ry, atol=1e-10)
            assert keeps == (i in sym), (n, i, r)
