"""The METRICS registry: one entry per score of evaluate, in table order, with formats."""

import dataclasses
import math

import numpy as np
import pytest

from cryogen.metrics import METRIC_DESCRIPTIONS, METRICS, Metric, evaluate


def test_every_metric_is_a_score_of_evaluate():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(12, 12, 12))
    out = evaluate(gt + 0.3 * rng.normal(size=gt.shape), gt)
    assert set(METRICS) <= set(out)
    table_order = "psnr ssim_global ssim_windowed wedge_corr res_z res_x fsc_res mse".split()
    assert list(METRICS) == table_order
    for name, metric in METRICS.items():
        assert isinstance(metric, Metric) and metric.name == name
        assert isinstance(out[name], float)
        assert METRIC_DESCRIPTIONS[name] == metric.description
        assert metric.label and "\n" not in metric.description
    assert set(METRIC_DESCRIPTIONS) == set(out)  # scores and the settings behind them
    with pytest.raises(dataclasses.FrozenInstanceError):
        METRICS["psnr"].fmt = "{}"  # type: ignore[misc]


def test_direction_of_the_scores():
    better_high = {name for name, m in METRICS.items() if m.higher_is_better}
    assert better_high == {"psnr", "ssim_global", "ssim_windowed", "wedge_corr"}


@pytest.mark.parametrize(
    "name, value, text",
    [
        ("psnr", 21.8734, "21.87"),
        ("ssim_global", 0.80741, "0.8074"),
        ("wedge_corr", 0.5, "0.500"),
        ("res_z", 12.34, "12.3"),
        ("mse", 0.000123456, "0.000123"),
        ("psnr", None, "n/a"),
        ("psnr", math.nan, "n/a"),
        ("res_x", math.inf, "n/a"),
    ],
)
def test_format(name, value, text):
    assert METRICS[name].format(value) == text
