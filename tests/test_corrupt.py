"""cryogen.corrupt: the missing wedge of a tilt range plus noise in the measured region only."""

import math

import pytest
import torch

from cryogen.corrupt import WEDGES, check_tilt_range, corrupt, corrupt_halves, measured_noise
from cryogen.errors import InputError
from cryogen.phantoms import sphere
from cryogen.wedge import missing_wedge_mask, wedge_operator

SHAPE = (16, 20, 18)


def clean(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SHAPE, generator=g) + sphere(SHAPE, 12, 3)


@pytest.mark.parametrize("tilts", [(-60.0, 60.0), (-54.0, 62.0)])
def test_without_noise_it_is_the_wedge_operator(tilts):
    x = clean()
    mask = missing_wedge_mask(SHAPE, *tilts)
    y = corrupt(x, *tilts)
    assert y.shape == SHAPE and y.dtype == torch.float32
    assert torch.equal(y, wedge_operator(x, mask))
    assert torch.equal(corrupt(x.double(), *tilts), y)  # computed in float32 whatever the input


@pytest.mark.parametrize("snr", [0.1, 1.0, 10.0])
def test_noise_is_only_in_the_measured_region_at_the_stated_snr(snr):
    x = clean()
    mask = missing_wedge_mask(SHAPE, -54.0, 62.0)
    signal = wedge_operator(x, mask)
    noise = corrupt(x, -54.0, 62.0, snr=snr, seed=3) - signal
    # nothing in the missing wedge: T_M leaves the noise unchanged
    torch.testing.assert_close(wedge_operator(noise, mask), noise, atol=1e-4, rtol=0)
    missing = torch.fft.rfftn(noise.double())[mask.double() == 0]
    assert missing.abs().max() < 1e-3 * torch.fft.rfftn(noise.double()).abs().max()
    assert float(signal.var() / noise.var()) == pytest.approx(snr, rel=1e-3)


def test_noise_is_reproducible_and_depends_on_the_seed():
    x = clean()
    a = corrupt(x, snr=1.0, seed=1)
    assert torch.equal(a, corrupt(x, snr=1.0, seed=1))
    assert not torch.allclose(a, corrupt(x, snr=1.0, seed=2))
    mask = missing_wedge_mask(SHAPE, -60.0, 60.0)
    signal = wedge_operator(x, mask)
    n1 = measured_noise(x, mask, 1.0, seed=1, signal=signal)
    torch.testing.assert_close(a, signal + n1)


@pytest.mark.parametrize(
    "tilt_min, tilt_max",
    [(60.0, -60.0), (10.0, 10.0), (-95.0, 60.0), (-60.0, 91.0), (math.nan, 60.0), (-60, math.inf)],
)
def test_tilt_range_checks(tilt_min, tilt_max):
    with pytest.raises(InputError) as e:
        check_tilt_range(tilt_min, tilt_max)
    assert "tilt_min" in str(e.value) and "tilt_max" in str(e.value)
    with pytest.raises(InputError):
        corrupt(clean(), tilt_min, tilt_max)


def test_tilt_range_limits_are_accepted():
    check_tilt_range(-90.0, 90.0)
    check_tilt_range(-54.0, 62.0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(snr=0.0), "SNR must be positive"),
        (dict(snr=-1.0), "SNR must be positive"),
        (dict(wedge="cone"), "fourier, tilt-series"),
    ],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        corrupt(clean(), **kwargs)
    with pytest.raises(InputError, match="expected a volume"):
        corrupt(torch.zeros(4, 4))
    with pytest.raises(InputError, match="SNR must be positive"):
        x = clean()
        measured_noise(x, missing_wedge_mask(SHAPE), 0.0, seed=0, signal=x)


def test_tilt_series_corruption_keeps_the_shape_and_the_object():
    assert WEDGES == ("fourier", "tilt-series")
    x = sphere(16, 10, 3)
    y = corrupt(x, -60.0, 60.0, wedge="tilt-series", tilt_step=6.0)
    assert y.shape == x.shape and y.dtype == torch.float32
    a, b = (x - x.mean()).flatten(), (y - y.mean()).flatten()
    assert float(a @ b / (a.norm() * b.norm())) > 0.5
    noisy = corrupt(x, -60.0, 60.0, wedge="tilt-series", tilt_step=6.0, snr=1.0, seed=1)
    assert not torch.allclose(noisy, y)


# ------------------------------------------------------------------------------ half-sets
def test_halves_carry_independent_noise_of_twice_the_variance():
    """Each half is the wedged volume plus its own noise of variance ``2 var(T_M x) / snr``
    (only in the measured region); the two noises are uncorrelated; their mean has SNR
    ``snr``."""
    x = sphere(32, 20, 4)
    snr = 0.5
    a, b = corrupt_halves(x, -60.0, 60.0, snr=snr, seed=7)
    mask = missing_wedge_mask(x.shape, -60.0, 60.0)
    clean_wedged = wedge_operator(x, mask)
    na, nb = a - clean_wedged, b - clean_wedged
    signal = float(clean_wedged.var())
    for n in (na, nb):
        assert float(n.var()) == pytest.approx(2 * signal / snr, rel=1e-3)
        torch.testing.assert_close(wedge_operator(n, mask), n, atol=1e-5, rtol=0)
    corr = float((na.flatten() @ nb.flatten()) / (na.norm() * nb.norm()))
    assert abs(corr) < 0.02  # independent draws (the measured region holds ~70 % of 32^3)
    mean_noise = 0.5 * (na + nb)
    assert signal / float(mean_noise.var()) == pytest.approx(snr, rel=0.05)
    again = corrupt_halves(x, -60.0, 60.0, snr=snr, seed=7)
    assert all(torch.equal(p, q) for p, q in zip((a, b), again, strict=True))


def test_halves_need_noise():
    with pytest.raises(InputError, match="half-sets need noise"):
        corrupt_halves(clean(), -60.0, 60.0)


def test_tilt_series_halves_share_the_specimen_not_the_noise():
    x = sphere(16, 10, 3)
    kw = dict(wedge="tilt-series", tilt_step=6.0, seed=2)
    even, odd = corrupt_halves(x, -60.0, 60.0, dose=1e5, **kw)  # a high dose: mostly signal
    assert even.shape == x.shape and not torch.allclose(even, odd)
    a, b = (even - even.mean()).flatten(), (odd - odd.mean()).flatten()
    assert float(a @ b / (a.norm() * b.norm())) > 0.8  # the same object in both
    noise = [h - corrupt(x, -60.0, 60.0, wedge="tilt-series", tilt_step=6.0) for h in (even, odd)]
    na, nb = (n.flatten() - n.mean() for n in noise)
    assert abs(float(na @ nb / (na.norm() * nb.norm()))) < 0.1  # their own noise each
