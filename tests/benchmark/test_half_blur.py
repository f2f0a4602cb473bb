"""A half-set benchmark scores the output ``cryogen predict --blur auto`` gives: the final
prediction blurred by the width its half-sets choose, with the unblurred PSNR beside it."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cryogen.benchmark import BenchmarkSettings, run_benchmark
from cryogen.errors import InputError
from support import TINY_NETWORK_SETTINGS, read_mrc


def _settings(**kw):
    return BenchmarkSettings(
        "sphere", steps=2, size=32, snr=0.3, halves=True, overrides=TINY_NETWORK_SETTINGS,
        curve_points=1, concurrent=False, **kw,
    )  # fmt: skip


def test_half_set_rows_are_blurred_by_the_halves_choice(tmp_path):
    blurred = run_benchmark(_settings(), tmp_path / "auto")
    plain = run_benchmark(_settings(blur="none"), tmp_path / "none")
    text = (tmp_path / "auto" / "results.md").read_text()
    assert "blurred by the Gaussian width each method's half-sets choose" in text
    assert "half-sets choose" not in (tmp_path / "none" / "results.md").read_text()
    for m in ("isonet", "cryogen"):
        sc, raw = blurred.scores[m], plain.scores[m]
        sigma = sc.get("half_blur_sigma")
        assert sigma is not None and raw.get("half_blur_sigma") is None
        assert sc.get("psnr_unblurred") == pytest.approx(raw.get("psnr"))
        assert f"sigma {sigma:g}" in text
        # the same training (a step budget is deterministic): the saved prediction is the
        # unblurred one filtered with the chosen width
        want = gaussian_filter(read_mrc(tmp_path / "none" / "volumes" / f"{m}.mrc"), sigma,
                               mode="nearest")  # fmt: skip
        np.testing.assert_allclose(
            read_mrc(tmp_path / "auto" / "volumes" / f"{m}.mrc"), want, atol=1e-4
        )


def test_blur_setting_is_checked_and_old_folders_read_as_unblurred():
    with pytest.raises(InputError, match="blur must be 'auto' or 'none'"):
        _settings(blur="soft").check()
    assert BenchmarkSettings.from_json({"case": "sphere"}).blur == "none"
