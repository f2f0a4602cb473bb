"""``cryogen corrupt --halves``: two half-sets and their mean, as the even and odd frames of
one acquisition would give."""

import numpy as np
import pytest

from support import assert_one_line_error, read_mrc, run_cli, write_mrc


def test_halves_and_their_mean_are_written(tmp_path):
    from cryogen.phantoms import sphere

    src = write_mrc(tmp_path / "clean.mrc", sphere(32, 20, 4).numpy(), voxel_size=4.0)
    out = tmp_path / "noisy.mrc"
    r = run_cli("corrupt", src, "-o", out, "--snr", 0.5, "--halves", "--seed", 3)
    assert r.exit_code == 0, r.output
    mean, h1, h2 = (
        read_mrc(p) for p in (out, tmp_path / "noisy_half1.mrc", tmp_path / "noisy_half2.mrc")
    )
    np.testing.assert_allclose(mean, 0.5 * (h1 + h2), atol=1e-6)
    clean = read_mrc(run_and_get(tmp_path, src))
    n1, n2 = h1 - clean, h2 - clean
    assert n1.var() == pytest.approx(2 * clean.var() / 0.5, rel=1e-3)
    assert abs(float(np.corrcoef(n1.ravel(), n2.ravel())[0, 1])) < 0.02
    assert clean.var() / (mean - clean).var() == pytest.approx(0.5, rel=0.05)


def run_and_get(tmp_path, src):
    """The noise-free wedged volume (no --snr)."""
    out = tmp_path / "wedged.mrc"
    assert run_cli("corrupt", src, "-o", out).exit_code == 0
    return out


def test_halves_need_an_snr_and_are_not_overwritten(tmp_path):
    src = write_mrc(tmp_path / "clean.mrc", np.random.default_rng(0).normal(size=(16, 16, 16)))
    out = tmp_path / "n.mrc"
    assert_one_line_error(run_cli("corrupt", src, "-o", out, "--halves"), "--snr")
    assert not out.exists()
    (tmp_path / "n_half2.mrc").write_text("mine")
    r = run_cli("corrupt", src, "-o", out, "--snr", 1, "--halves")
    assert_one_line_error(r, "n_half2.mrc", "--overwrite")
    assert not out.exists() and (tmp_path / "n_half2.mrc").read_text() == "mine"
