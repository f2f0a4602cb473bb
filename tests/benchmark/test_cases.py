"""Benchmark cases: the paper's layouts, wedged phantoms, noise in the measured region, and the
tilt-series corruption."""

import numpy as np
import pytest
import torch

from cryogen.benchmark import CASES, build_case, case_train_settings
from cryogen.corrupt import corrupt
from cryogen.metrics import evaluate
from cryogen.phantoms import paper_sphere, rotate_volume
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator


def test_case_settings_follow_the_paper():
    assert case_train_settings("sphere") == {"subtomo_size": 96, "crop_size": 64, "n_subtomos": 10}
    assert case_train_settings("prism") == {"subtomo_size": 96, "crop_size": 64, "n_subtomos": 1}
    s = case_train_settings("sphere", 64)
    assert s["crop_size"] <= s["subtomo_size"] <= 64
    assert case_train_settings("prism-whole") == {
        "subtomo_size": 96,
        "crop_size": 96,
        "n_subtomos": 1,
        "data_weight": 1,
    }
    assert list(CASES) == ["sphere", "prism", "prism-whole", "ribosome", "crowded"]


def test_prism_case_is_ten_wedged_prisms():
    case = build_case("prism", size=24, seed=1)
    assert len(case.truth) == len(case.corrupted) == 10
    assert case.train_settings["subtomo_size"] == 24 and case.train_settings["n_subtomos"] == 1
    for t, c in zip(case.truth, case.corrupted, strict=True):
        torch.testing.assert_close(c, apply_missing_wedge(t, -60, 60))
    assert not torch.equal(case.truth[0], case.truth[1])  # different orientations


def test_noise_stays_in_the_measured_region_at_the_asked_snr():
    x = paper_sphere(24)
    y = corrupt(x, -54, 62, snr=0.5, seed=3)
    mask = missing_wedge_mask(x.shape, -54, 62)
    torch.testing.assert_close(wedge_operator(y, mask), y, atol=1e-5, rtol=0)
    clean = wedge_operator(x, mask)
    assert float(clean.var()) / float((y - clean).var()) == pytest.approx(0.5, rel=1e-3)


def test_rotate_volume_identity_and_quarter_turn():
    v = torch.rand(12, 12, 12)
    torch.testing.assert_close(rotate_volume(v, np.eye(3)), v, atol=1e-5, rtol=0)
    quarter = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    r = rotate_volume(v, quarter)
    candidates = [torch.rot90(v, k, d) for k in (1, 3) for d in ((0, 1), (0, 2), (1, 2))]
    assert any(torch.allclose(r, c, atol=1e-5) for c in candidates)


def test_tilt_series_corruption_resembles_the_phantom():
    pytest.importorskip("cryogen.tomo")
    case = build_case("sphere", size=32, wedge="tilt-series", tilt_step=3.0)
    x, y = case.truth[0], case.corrupted[0]
    assert y.shape == x.shape
    assert float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1]) > 0.8
    # the reconstruction misses the wedge: res along z much worse than along x
    s = evaluate(y, x, tilt_min=-60, tilt_max=60)
    assert s["res_z"] > 2 * s["res_x"]


def test_the_benchmark_help_names_every_case():
    from cryogen.cli.commands.benchmark import CaseName

    text = CaseName.__metadata__[0].help
    assert all(name in text for name in CASES), text
