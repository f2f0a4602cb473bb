"""The command line under faults: an output that is an input (through a link too) is
refused by every command that reads files, whatever the flags; bad values are one-line
errors; SIGTERM removes temporary files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest

from predict.fakes import identity_checkpoint
from support import assert_one_line_error, run_cli, write_mrc


def blobs(seed=0, n=24):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    v = np.zeros((n, n, n), np.float32)
    for _ in range(4):
        c = rng.uniform(4, n - 4, 3)
        v += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 8.0)
    return v


@pytest.fixture()
def tomo(tmp_path):
    return write_mrc(tmp_path / "tomo.mrc", blobs(), voxel_size=10.0)


def untouched(path, before):
    assert path.read_bytes() == before, f"{path} was changed"


def test_no_command_writes_over_its_input(tmp_path, tomo):
    """prepare, evaluate --json, make-mask, reconstruct, corrupt, predict, deconv and
    simulate, with --overwrite, given their input (or a link to it) as the output."""
    link = tmp_path / "link.mrc"
    link.symlink_to(tomo)
    before = tomo.read_bytes()
    truth = write_mrc(tmp_path / "truth.mrc", blobs(1), voxel_size=10.0)
    model = identity_checkpoint(tmp_path / "model.pt", blobs())
    ts = tmp_path / "ts.mrc"
    assert run_cli("simulate", tomo, "-o", ts, "--tilt-step", 30).exit_code == 0
    ts_before = ts.read_bytes()
    cases = [
        ("prepare", tomo, "-o", link),
        ("evaluate", tomo, "--truth", truth, "--json", link),
        ("make-mask", tomo, "-o", link),
        ("reconstruct", ts, "-o", ts),
        ("reconstruct", ts, "-o", tmp_path / "ts.tlt"),
        ("corrupt", tomo, "-o", link),
        ("corrupt", tomo, "-o", tmp_path / "sub" / ".." / "tomo.mrc"),
        ("predict", model, tomo, "-o", link),
        ("deconv", tomo, "-o", link, "--defocus", 2),
        ("simulate", tomo, "-o", link),
    ]
    (tmp_path / "sub").mkdir()
    for args in cases:
        assert_one_line_error(run_cli(*args, "--overwrite"), "is an input")
    untouched(tomo, before)
    untouched(ts, ts_before)
    assert link.is_symlink()


def test_bad_values_are_one_line_errors(tmp_path, tomo):
    out = tmp_path / "out.mrc"
    for lo, hi in ((70, 60), (10, 10), ("nan", 60), (-100, 60)):
        r = run_cli("corrupt", tomo, "-o", out, "--tilt-min", lo, "--tilt-max", hi)
        assert_one_line_error(r, "--tilt-min")
        r = run_cli("evaluate", tomo, "--truth", tomo, "--tilt-min", lo, "--tilt-max", hi)
        assert_one_line_error(r, "--tilt-min")
    assert not out.exists()
    assert_one_line_error(run_cli("phantom", "prism", "-o", out, "--seed", -1), "--seed")
    r = run_cli("make-mask", tomo, "-o", out, "--patch-size", 1000)
    assert_one_line_error(r, "--patch-size 1000 is too large", "at most")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tomo.mrc"]


def test_evaluate_says_when_the_voxel_sizes_differ(tmp_path, tomo):
    truth = write_mrc(tmp_path / "truth.mrc", blobs(), voxel_size=5.0)
    r = run_cli("evaluate", tomo, "--truth", truth)
    assert r.exit_code == 0, r.output
    assert "voxel size 10 Å, the truth 5 Å" in " ".join(r.output.split())


def test_reconstruct_names_the_size_it_writes(tmp_path, tomo):
    ts = tmp_path / "ts.mrc"
    assert run_cli("simulate", tomo, "-o", ts, "--tilt-step", 30).exit_code == 0
    r = run_cli("reconstruct", ts, "-o", tmp_path / "rec.mrc", "--thickness", 40)
    assert r.exit_code == 0, r.output
    assert "(92.2 kB)" in r.output  # 40 x 24 x 24 float32


@pytest.mark.slow
def test_sigterm_during_predict_leaves_no_temporary_file(tmp_path):
    big = write_mrc(tmp_path / "big.mrc", np.random.default_rng(0).normal(size=(96,) * 3))
    model = identity_checkpoint(tmp_path / "model.pt", blobs())
    out = tmp_path / "out.mrc"
    p = subprocess.Popen(
        [sys.executable, "-m", "cryogen", "predict", str(model), str(big), "-o", str(out),
         "--tile", "16", "--overlap", "8", "--quiet"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    deadline = time.time() + 60
    while not any(f.name.endswith(".tmp") for f in tmp_path.iterdir()):
        assert p.poll() is None and time.time() < deadline, "no temporary file appeared"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["big.mrc", "model.pt"]
    with mrcfile.open(big) as m:
        assert m.data.shape == (96, 96, 96)
