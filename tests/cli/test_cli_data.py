"""A lab's data through the command line: tilt ranges read from the data and said per
tomogram (a loud default otherwise), deconvolved maps chosen, half-sets found and given,
threads, and the files the commands write."""

from __future__ import annotations

import json
import re

import mrcfile
import numpy as np
import pandas as pd
import pytest

import cryogen.train
from cryogen.errors import InputError
from cryogen.io import read_star, tomograms_from_star, write_star, write_tlt
from support import assert_one_line_error, run_cli, write_mrc

N = 24


def vol(seed=0, shape=(N, N, N)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def ok(*args):
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return result


def dry_config(result):
    """The resolved configuration a ``--dry-run`` prints."""
    text = result.output[result.output.index("{") :]
    return json.loads(text[: text.rindex("}") + 1])


def text_of(result):
    return " ".join(result.output.split())


def library_train(monkeypatch):
    """Replace ``cryogen.train.train`` by a fake that records what it is given and stops
    with the library's ``volume 0`` error."""
    seen = {}

    def fake(config, volumes, run_dir, **kw):
        seen.update(config=config, volumes=volumes, **kw)
        raise InputError("volume 0: shape (24, 24, 24) is smaller than the training crop")

    monkeypatch.setattr(cryogen.train, "train", fake)
    return seen


# ------------------------------------------------------------------------------ tilt ranges
def test_train_reads_the_tlt_beside_each_tomogram_and_says_so(tmp_path):
    a = write_mrc(tmp_path / "TS_01_rec.mrc", vol(1), 10.0)
    write_tlt(tmp_path / "TS_01.tlt", [-54.0, -3.0, 0.0, 62.0])
    res = ok("train", a, "-o", tmp_path / "run", "--dry-run")
    text = text_of(res)
    assert f"tomogram 1: {a}" in text and "tilt -54/+62 deg" in text and "TS_01.tlt" in text
    assert "warning" not in text
    cfg = dry_config(res)
    assert (cfg["tilt_min"], cfg["tilt_max"]) == (-54.0, 62.0)


def test_train_given_range_wins_and_a_missing_one_is_loud(tmp_path):
    a = write_mrc(tmp_path / "a.mrc", vol(1), 10.0)
    res = ok("train", a, "-o", tmp_path / "run", "--dry-run")
    text = text_of(res)
    assert "warning: no tilt range recorded for" in text and "-60/+60" in text
    assert "--tlt" in text
    res = ok(
        "train", a, "-o", tmp_path / "run", "--dry-run", "--tilt-min", "-45", "--tilt-max", "50"
    )
    assert "warning" not in text_of(res) and "tilt -45/+50 deg (given)" in text_of(res)
    other = write_tlt(tmp_path / "x.tlt", [-48.0, 0.0, 48.0])
    res = ok("train", a, "-o", tmp_path / "run", "--dry-run", "--tlt", other)
    assert dry_config(res)["tilt_min"] == -48.0


def test_train_reads_a_relion5_project(tmp_path, monkeypatch):
    job = tmp_path / "Tomograms" / "job007"
    (job / "tomograms").mkdir(parents=True)
    write_mrc(job / "tomograms" / "rec_TS_01.mrc", vol(1), 10.0)
    (tmp_path / "ts").mkdir()
    write_star(
        tmp_path / "ts" / "TS_01.star",
        {"TS_01": pd.DataFrame({"rlnTomoNominalStageTiltAngle": [-51.0, 0.0, 57.0]})},
    )
    frame = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"],
            "rlnTomoTiltSeriesStarFile": ["ts/TS_01.star"],
            "rlnTomoReconstructedTomogram": ["Tomograms/job007/tomograms/rec_TS_01.mrc"],
        }
    )
    write_star(job / "tomograms.star", {"global": frame})
    monkeypatch.chdir(tmp_path)
    res = ok("train", "Tomograms/job007/tomograms.star", "-o", "run", "--dry-run")
    assert "tilt -51/+57 deg (TS_01.star, rlnTomoNominalStageTiltAngle)" in text_of(res)


def two_ranges(tmp_path):
    a = write_mrc(tmp_path / "a.mrc", vol(1), 10.0)
    b = write_mrc(tmp_path / "b.mrc", vol(2), 10.0)
    write_tlt(tmp_path / "a.tlt", [-54.0, 62.0])
    write_tlt(tmp_path / "b.tlt", [-60.0, 60.0])
    return a, b


def test_different_ranges_go_to_a_training_that_takes_them(tmp_path, monkeypatch):
    seen = library_train(monkeypatch)
    run_cli("train", *two_ranges(tmp_path), "-o", tmp_path / "run", "--steps", "1")
    assert seen["tilt_ranges"] == [(-54.0, 62.0), (-60.0, 60.0)]


# ------------------------------------------------------------------------------ which file
def deconv_star(tmp_path):
    write_mrc(tmp_path / "a.mrc", vol(1), 10.0)
    write_mrc(tmp_path / "a_deconv.mrc", vol(2), 10.0)
    frame = pd.DataFrame(
        {
            "rlnTomoName": ["a.mrc"],
            "rlnDeconvTomoName": ["a_deconv.mrc"],
            "rlnTiltMin": [-60.0],
            "rlnTiltMax": [60.0],
        }
    )
    return write_star(tmp_path / "t.star", frame)


def test_train_uses_the_deconvolved_map_unless_told_not_to(tmp_path):
    star = deconv_star(tmp_path)
    res = ok("train", star, "-o", tmp_path / "run", "--dry-run")
    assert f"{tmp_path / 'a_deconv.mrc'} (rlnDeconvTomoName)" in text_of(res)
    res = ok("train", star, "-o", tmp_path / "run", "--dry-run", "--no-deconv")
    assert "rlnDeconvTomoName" not in text_of(
        res
    ) and f"tomogram 1: {tmp_path / 'a.mrc'}" in text_of(res)


# ------------------------------------------------------------------------------ half-sets
def test_train_takes_half_set_pairs(tmp_path, monkeypatch):
    seen = library_train(monkeypatch)
    pairs = []
    for name in ("A", "B"):
        pairs += [write_mrc(tmp_path / f"{name}_even.mrc", vol(1), 10.0),
                  write_mrc(tmp_path / f"{name}_odd.mrc", vol(2), 10.0)]  # fmt: skip
    args = ["--halves", pairs[0], pairs[1], "--halves", pairs[2], pairs[3]]
    res = run_cli("train", *args, "-o", tmp_path / "run", "--tilt-min", "-60", "--tilt-max", "60")
    # the library's "volume 0" reaches the user as the file it is
    assert_one_line_error(res, f"mean of {pairs[0]} and {pairs[1]}: shape", "training crop")
    assert "volume 0" not in res.output
    assert len(seen["halves"]) == 2
    np.testing.assert_allclose(seen["volumes"][0], (vol(1) + vol(2)) / 2, rtol=1e-6)
    np.testing.assert_array_equal(seen["halves"][1][1], vol(2))
    assert_one_line_error(
        run_cli("train", "--halves", pairs[0], "-o", tmp_path / "run"), "--halves takes two files"
    )


def test_threads_default_to_the_machine_and_can_be_set(tmp_path):
    a = write_mrc(tmp_path / "a.mrc", vol(1), 10.0)
    args = [
        "train",
        a,
        "-o",
        tmp_path / "run",
        "--dry-run",
        "--tilt-min",
        "-60",
        "--tilt-max",
        "60",
    ]
    assert dry_config(ok(*args))["threads"] is None  # resolved by cryogen.device at the start
    assert dry_config(ok(*args, "--threads", "3"))["threads"] == 3
    assert dry_config(ok(*args, "--preset", "paper"))["threads"] is None


# ------------------------------------------------------------------------------ prepare
def test_prepare_writes_each_tomograms_range_and_its_half_sets(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", vol(1), 10.0)
    write_mrc(folder / "TS_01_even.mrc", vol(2), 10.0)
    write_mrc(folder / "TS_01_odd.mrc", vol(3), 10.0)
    write_tlt(folder / "TS_01.tlt", [-54.0, 0.0, 62.0])
    write_mrc(folder / "TS_02_Vol.mrc", vol(4), 10.0)  # AreTomo3's names
    write_mrc(folder / "TS_02_EVN_Vol.mrc", vol(5), 10.0)
    write_mrc(folder / "TS_02_ODD_Vol.mrc", vol(6), 10.0)
    (folder / "TS_02.aln").write_text(
        "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE"
        "     TILT\n    0  85.0  1.0  0.0  0.0  1.0  1.0  1.0  0.0  -50.00\n"
        "    1  85.0  1.0  0.0  0.0  1.0  1.0  1.0  0.0   55.00\n"
    )
    star = tmp_path / "tomograms.star"
    res = ok("prepare", folder, "-o", star)
    assert "warning" not in text_of(res)
    a, b = tomograms_from_star(star)
    assert (a.path.name, a.half1.name, a.half2.name) == (
        "TS_01.mrc",
        "TS_01_even.mrc",
        "TS_01_odd.mrc",
    )
    assert (a.tilt_min, a.tilt_max) == (-54.0, 62.0)
    assert (b.path.name, b.half1.name, b.half2.name) == (
        "TS_02_Vol.mrc", "TS_02_EVN_Vol.mrc", "TS_02_ODD_Vol.mrc")  # fmt: skip
    assert (b.tilt_min, b.tilt_max) == (-50.0, 55.0)


def test_prepare_lists_half_sets_alone_as_their_mean_and_warns_without_angles(tmp_path):
    even = write_mrc(tmp_path / "X_half1.mrc", vol(1), 8.0)
    odd = write_mrc(tmp_path / "X_half2.mrc", vol(2), 8.0)
    star = tmp_path / "t.star"
    res = ok("prepare", "--halves", even, odd, "-o", star)
    assert "warning: no tilt angles found" in text_of(res)
    (entry,) = tomograms_from_star(star)
    assert entry.path == tmp_path / "X_mean.mrc" and entry.pixel_size == 8.0
    with mrcfile.open(entry.path) as m:
        np.testing.assert_allclose(m.data, (vol(1) + vol(2)) / 2, rtol=1e-6)
    assert (entry.half1, entry.half2) == (even, odd)
    assert (entry.tilt_min, entry.tilt_max) == (-60.0, 60.0)
    assert list(read_star(star)["rlnTomoName"]) == ["X_mean.mrc"]
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    write_mrc(lonely / "Y_even.mrc", vol(1), 8.0)
    assert_one_line_error(
        run_cli("prepare", lonely, "-o", tmp_path / "y.star"),
        "Y_even.mrc",
        "without its other half",
    )


# ------------------------------------------------------------------------------ small things
def test_simulate_writes_an_image_stack(tmp_path):
    src = write_mrc(tmp_path / "v.mrc", vol(1, (16, 16, 16)), 10.0)
    ok("simulate", src, "-o", tmp_path / "ts.mrc", "--tilt-step", 20, "--device", "cpu")
    with mrcfile.open(tmp_path / "ts.mrc") as m:
        assert int(m.header.ispg) == 0 and m.is_image_stack()
        assert m.data.shape[0] == 7 and m.voxel_size.x == pytest.approx(10.0)


def test_predict_checks_its_input_before_the_model(tmp_path):
    flat = tmp_path / "flat.mrc"
    with mrcfile.new(flat) as m:
        m.set_data(np.zeros((8, 8), np.float32))
    res = run_cli("predict", tmp_path / "no_such_run", flat, "-o", tmp_path / "o.mrc")
    assert_one_line_error(res, "flat.mrc", "2D image")


def test_flags_show_no_value_in_help():
    res = run_cli("corrupt", "--help")
    row = next(line for line in res.output.splitlines() if "--overwrite" in line)
    assert "<bool>" not in row and "Replace existing output" in row
    assert not re.search(r"--quiet\s+<bool>", run_cli("predict", "--help").output)


def test_show_reads_the_range_and_reports_the_power_in_the_wedge(tmp_path):
    from cryogen.figures import wedge_power

    truth = vol(1, (16, 16, 16))
    a = write_mrc(tmp_path / "a.mrc", truth, 10.0)
    b = tmp_path / "a_wedge.mrc"
    ok("corrupt", a, "-o", b, "--tilt-min", "-50", "--tilt-max", "56")
    write_tlt(tmp_path / "a_wedge.tlt", [-50.0, 0.0, 56.0])
    std = write_mrc(tmp_path / "a_corrected_std.mrc", np.abs(vol(3, (16, 16, 16))), 10.0)
    res = ok("show", b, a, std, "-o", tmp_path / "f.png")
    text = text_of(res)
    assert re.search(r"a_wedge.mrc: 0\.0\d % of its power in the missing wedge", text), text
    assert "a.mrc:" in text and "a_corrected_std.mrc:" not in text  # no Fourier for std maps
    assert wedge_power(truth, -50.0, 56.0) > 0.2
