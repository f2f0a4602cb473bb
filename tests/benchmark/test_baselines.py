"""The reference filters of the benchmark: a Gaussian blur and the best one for a truth."""

import math

import pytest
import torch

from cryogen.benchmark.baselines import best_gaussian_blur, gaussian_blur
from cryogen.benchmark.cases import build_case


def test_gaussian_blur_is_the_analytic_filter():
    """A unit impulse becomes the sampled Gaussian (normalised, periodic) of the width."""
    n, sigma = 32, 1.5
    v = torch.zeros(n, n, n)
    v[0, 0, 0] = 1.0
    out = gaussian_blur(v, sigma)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    d = torch.minimum(torch.arange(n), n - torch.arange(n)).double()
    g1 = torch.exp(-(d**2) / (2 * sigma**2))
    g1 = g1 / g1.sum()
    expected = g1[:, None, None] * g1[None, :, None] * g1[None, None, :]
    torch.testing.assert_close(out.double(), expected, atol=2e-4, rtol=0)
    assert torch.equal(
        gaussian_blur(torch.ones(8, 8, 8), 2.0).round(decimals=5), torch.ones(8, 8, 8)
    )


def test_the_best_blur_is_the_best_of_the_widths():
    from cryogen.metrics import apply_scale_fit, psnr

    case = build_case("sphere", size=32, snr=0.3, seed=1)
    sigma, blurred = best_gaussian_blur(case.corrupted, case.truth, (0.5, 1.0, 2.0))
    score = psnr(apply_scale_fit(blurred[0], case.truth[0]), case.truth[0])
    for other in (0.5, 1.0, 2.0):
        b = gaussian_blur(case.corrupted[0], other)
        assert psnr(apply_scale_fit(b, case.truth[0]), case.truth[0]) <= score + 1e-9
    assert math.isfinite(score) and sigma in (0.5, 1.0, 2.0)


def test_a_noisy_half_set_case_has_the_blur_row_and_its_mean():
    case = build_case("sphere", size=32, snr=0.3, seed=1, halves=True)
    assert case.noisy and case.halves is not None and len(case.halves) == 1
    a, b = case.halves[0]
    torch.testing.assert_close(case.corrupted[0], 0.5 * (a + b))
    from cryogen.benchmark.cases import REFERENCES

    assert [r for r in REFERENCES if REFERENCES[r].applies(case)] == ["corrupted", "blur"]
    plain = build_case("sphere", size=32)
    assert [r for r in REFERENCES if REFERENCES[r].applies(plain)] == ["corrupted"]
