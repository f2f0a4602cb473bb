"""Time to quality, the stability criterion and the targets of a run, and how results.md
reports them."""

import pytest

from cryogen.benchmark import (
    BenchmarkResults,
    BenchmarkSettings,
    CurvePoint,
    Scores,
    largest_drop,
    render_markdown,
    run_targets,
    time_to_quality,
)


def curve(*points):
    """``(minutes, psnr)`` pairs as curve points."""
    return [CurvePoint(minutes=float(t), psnr=float(p)) for t, p in points]


def test_time_to_quality_interpolates_between_checkpoints():
    c = curve((0.0, 20.0), (1.0, 24.0), (2.0, 26.0), (3.0, 25.0))
    t = time_to_quality(25.0, 10.0, c)
    assert t.reached and t.minutes == pytest.approx(1.5)
    assert t.minutes_checkpoint == 2.0
    assert t.fraction == pytest.approx(0.15) and t.fraction_checkpoint == pytest.approx(0.2)
    t = time_to_quality(30.0, 10.0, c)
    assert not t.reached and t.minutes is None and t.fraction is None
    t = time_to_quality(19.0, 10.0, c)  # already there untrained
    assert t.reached and t.minutes == 0.0


def test_largest_drop_is_the_stability_criterion():
    c = curve(
        (0.0, 20.0),
        (1.0, 30.0),
        (2.0, 29.0),  # not after the first 2 minutes: not counted
        (3.0, 28.5),  # 1.5 below the best before it (30 at 1 min)
        (4.0, 31.0),
        (5.0, 30.8),
    )
    assert largest_drop(c) == pytest.approx(1.5)
    assert largest_drop(c, after_minutes=3.0) == pytest.approx(0.2)
    assert largest_drop(c[::-1]) == pytest.approx(1.5)  # order of the points is time's
    rising = curve(*((m, 20.0 + m) for m in range(6)))
    assert largest_drop(rising) == 0.0
    assert largest_drop(c[:3]) is None  # nothing after 2 minutes
    assert largest_drop(curve((3.0, 30.0))) is None  # nothing before it
    assert largest_drop([]) is None


def test_stability_is_reported_with_the_targets():
    scores = {
        m: Scores({"psnr": 30.0, "ssim_global": 0.9}) for m in ("corrupted", "isonet", "cryogen")
    }
    checks = run_targets("sphere", scores, True, drop=1.2)
    [stable] = [c for c in checks if "stable" in c.target]
    assert not stable.met and "1.20 dB" in stable.value
    assert [c for c in run_targets("sphere", scores, True, drop=0.4) if "stable" in c.target][0].met
    assert not [c for c in run_targets("sphere", scores, True) if "stable" in c.target]
    results = BenchmarkResults(
        settings=BenchmarkSettings("sphere", concurrent=True),
        scores=scores,
        stability={"isonet": 1.38, "cryogen": None},
        targets=checks,
    )
    text = render_markdown(results)
    assert "**Stability**" in text and "IsoNet-style 1.38 dB" in text
    assert "CryoGEN n/a (no checkpoint after 2 min)" in text
    assert "CryoGEN stable: after 2 min no checkpoint more than 1 dB" in text and "MISSED" in text
    # targets are named by what they measure
    assert "Targets (set for 15 minutes of training per method):" in text
    assert "CryoGEN PSNR >= 32.5 dB: MISSED (30.00 dB)" in text
