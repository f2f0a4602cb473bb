"""The command line end to end: calibration through the CLI, bad input, figures."""

import json

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from cryogen.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_mrc(path, data, voxel_size=2.5):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel_size
    return path


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


def test_calibration_through_the_cli(tmp_path):
    gt, bad, js = tmp_path / "sphere.mrc", tmp_path / "corrupted.mrc", tmp_path / "s.json"
    assert run("phantom", "sphere", "-o", gt).exit_code == 0
    r = run("corrupt", gt, "-o", bad, "--tilt-min", -60, "--tilt-max", 60)
    assert r.exit_code == 0, r.output
    r = run("evaluate", bad, "--truth", gt, "--json", js)
    assert r.exit_code == 0, r.output
    scores = json.loads(js.read_text())
    assert scores["psnr"] == pytest.approx(21.87, abs=0.05)
    assert scores["ssim_global"] == pytest.approx(0.807, abs=0.003)
    for key in ("ssim_windowed", "wedge_corr", "res_z", "res_x"):
        assert key in scores
    assert abs(scores["wedge_corr"]) < 1e-6  # the corrupted input has nothing in the wedge
    assert scores["res_z"] > scores["res_x"]  # blurred along the beam
    assert scores["scale_fit"] is True
    with mrcfile.open(bad) as m:
        assert m.data.shape == (140, 140, 140)


def test_corrupt_keeps_voxel_size_and_noise_snr(tmp_path):
    rng = np.random.default_rng(0)
    src = write_mrc(tmp_path / "TS_01.bin4.rec", rng.normal(size=(24, 24, 24)), voxel_size=7.5)
    out = tmp_path / "TS_01.bin4_wedge.mrc"
    r = run("corrupt", src, "-o", out, "--snr", 0.5)
    assert r.exit_code == 0, r.output
    with mrcfile.open(out) as m:
        assert float(m.voxel_size.x) == pytest.approx(7.5)
    # refused without --overwrite, accepted with it
    r = run("corrupt", src, "-o", out)
    assert_one_line_error(r, "--overwrite")
    assert run("corrupt", src, "-o", out, "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    "case, needles",
    [
        ("not_mrc", ["not_mrc.mrc"]),
        ("two_d", ["two_d.mrc"]),
        ("nan", ["nan.mrc", "NaN"]),
        ("constant", ["constant.mrc"]),
        ("voxel0", ["voxel0.mrc", "--pixel-size"]),
        ("missing", ["missing.mrc"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case, needles):
    path = tmp_path / f"{case}.mrc"
    if case == "not_mrc":
        path.write_bytes(b"this is not an MRC file at all" * 50)
    elif case == "two_d":
        write_mrc(path, np.random.default_rng(0).normal(size=(16, 16)))
    elif case == "nan":
        d = np.random.default_rng(0).normal(size=(8, 8, 8))
        d[3, 3, 3] = np.nan
        write_mrc(path, d)
    elif case == "constant":
        write_mrc(path, np.ones((8, 8, 8)))
    elif case == "voxel0":
        write_mrc(path, np.random.default_rng(0).normal(size=(8, 8, 8)), voxel_size=0.0)
    out = tmp_path / "out.mrc"
    r = run("corrupt", path, "-o", out)
    assert_one_line_error(r, *needles)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name] if case != "missing" else []
    )


def test_voxel_size_zero_with_pixel_size(tmp_path):
    src = write_mrc(tmp_path / "v0.mrc", np.random.default_rng(0).normal(size=(8, 8, 8)), 0.0)
    out = tmp_path / "out.mrc"
    assert run("corrupt", src, "-o", out, "--pixel-size", 4.2).exit_code == 0
    with mrcfile.open(out) as m:
        assert float(m.voxel_size.x) == pytest.approx(4.2)


def test_unwritable_output_folder(tmp_path):
    src = write_mrc(tmp_path / "a.mrc", np.random.default_rng(0).normal(size=(8, 8, 8)))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("corrupt", src, "-o", blocker / "out.mrc")
    assert_one_line_error(r)
    r = run("corrupt", src, "-o", tmp_path / "no" / "such" / "dir" / "out.mrc")
    assert_one_line_error(r)


def test_phantom_prism_and_show(tmp_path):
    a = tmp_path / "prism.mrc"
    r = run("phantom", "prism", "-o", a, "--size", 32, "--seed", 3)
    assert r.exit_code == 0, r.output
    b = tmp_path / "prism_wedge.mrc"
    assert run("corrupt", a, "-o", b).exit_code == 0
    fig = tmp_path / "fig.png"
    r = run("show", a, b, "-o", fig)
    assert r.exit_code == 0, r.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    img = imread(fig)
    assert img.shape[1] > img.shape[0] / 3  # two columns of six rows
    assert img.std() > 0.01


def test_evaluate_shape_mismatch(tmp_path):
    a = write_mrc(tmp_path / "a.mrc", np.random.default_rng(0).normal(size=(8, 8, 8)))
    b = write_mrc(tmp_path / "b.mrc", np.random.default_rng(1).normal(size=(8, 8, 9)))
    assert_one_line_error(run("evaluate", a, "--truth", b), "shape")


def test_help_lists_units_and_defaults():
    r = run("corrupt", "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "degrees" in text and "-60" in text
