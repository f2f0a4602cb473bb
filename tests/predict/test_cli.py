"""The ``predict`` command (and the ``train`` runs it reads): files, STAR lists, samples,
test-time augmentation, one-line errors."""

import json
import math

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryogen.predict import PredictOptions, load_model, predict_volume
from predict.fakes import measured_error, wedged
from support import assert_one_line_error, read_mrc, run_cli, write_mrc


def invoke(*args):
    """``cryogen ARGS...``; the test models' tiles are 16 voxels, the default overlap 16."""
    args = [str(a) for a in args]
    if args[0] == "predict" and "--overlap" not in args:
        args += ["--overlap", "4"]
    return run_cli(*args)


def one_line_error(res, needle):
    """Exit code 1 and exactly one line, ``error: ...``, that contains ``needle``."""
    assert_one_line_error(res, needle)
    assert res.exit_code == 1, res.output
    err = res.stderr if res.stderr else res.output
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err


def voxel_size(path):
    with mrcfile.open(path, permissive=True) as m:
        return float(m.voxel_size.x)


# ------------------------------------------------------------------------------ train runs
TRAIN_FLAGS = [
    "--device", "cpu", "--quiet", "--crop-size", "16", "--set", "features=[4,8]",
    "--set", 'amp="off"', "--set", "subtomo_size=20", "--set", "n_subtomos=2",
]  # fmt: skip


@pytest.mark.parametrize("arch, label", [("unetpp", "U-Net++"), ("unet", "U-Net")])
def test_cli_dry_run_prints_parameter_counts(tmp_path, volume, arch, label):
    from cryogen.model import build_generator
    from cryogen.nets import count_parameters
    from cryogen.train import TrainConfig

    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    res = invoke(
        "train", tmp_path / "t.mrc", "-o", tmp_path / "r", "--dry-run", "--method", "cryogen",
        "--set", "features=[4,8,16]", "--set", f'arch="{arch}"',
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    n = count_parameters(build_generator(TrainConfig(features=(4, 8, 16), arch=arch)))
    assert f"generator g ({label})" in res.output and f"{n:,}" in res.output
    assert "energy model E" in res.output and "CryoGEN (Algorithm 1)" in res.output
    assert '"features": [' in res.output and not (tmp_path / "r" / "last.pt").exists()


def test_cli_train_then_predict(tmp_path, volume):
    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    run = invoke(
        "train", tmp_path / "t.mrc", "-o", tmp_path / "r", "--steps", "3", "--tilt-min", "-55",
        "--tilt-max", "58", "--set", "energy_features=[4,4]", *TRAIN_FLAGS,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert (tmp_path / "r" / "last.pt").is_file() and (tmp_path / "r" / "losses.csv").is_file()
    out = tmp_path / "out.mrc"
    res = invoke("predict", tmp_path / "r", tmp_path / "t.mrc", "-o", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    with mrcfile.open(out) as m:
        assert m.data.shape == volume.shape
        assert math.isclose(float(m.voxel_size.x), 3.0, rel_tol=1e-6)
        assert np.isfinite(m.data).all()
        assert abs(float(m.data.mean()) - float(volume.mean())) < 5  # the input's scale
    # the checkpoint's tilt range is checked; errors are one line, exit code 1
    res = invoke(
        "predict", tmp_path / "r", tmp_path / "t.mrc", "-o", tmp_path / "o2.mrc",
        "--tilt-min", "-60",
    )  # fmt: skip
    assert res.exit_code == 1
    assert "trained for tilt range [-55, 58]" in res.output
    # an existing output is kept without --overwrite
    res = invoke("predict", tmp_path / "r", tmp_path / "t.mrc", "-o", out)
    assert res.exit_code == 1


def test_cli_resumes_a_run_saved_before_a_field_existed(tmp_path, volume):
    """A run whose config.json and checkpoint lack a later field resumes with the value it
    ran with (ADDED_FIELDS), not today's default."""
    from cryogen.model import load_checkpoint, save_checkpoint
    from cryogen.train.config import ADDED_FIELDS

    write_mrc(tmp_path / "t.mrc", volume, 3.0)
    args = ["train", tmp_path / "t.mrc", "-o", tmp_path / "r", *TRAIN_FLAGS]
    assert invoke(*args, "--steps", "2").exit_code == 0
    rd = tmp_path / "r"
    saved = json.loads((rd / "config.json").read_text())
    for k in ADDED_FIELDS:
        saved.pop(k)
    (rd / "config.json").write_text(json.dumps(saved))
    ckpt = load_checkpoint(rd / "last.pt")
    for k in ADDED_FIELDS:
        ckpt["config"].pop(k)
    save_checkpoint(rd / "last.pt", ckpt)
    res = invoke(*args, "--steps", "3", "--resume")
    assert res.exit_code == 0, res.output
    resumed = json.loads((rd / "config.json").read_text())
    assert all(resumed[k] == v for k, v in ADDED_FIELDS.items())
    assert load_checkpoint(rd / "last.pt")["step"] == 3


# ------------------------------------------------------------------------------ predict
def test_cli_single_file_and_samples(tmp_path, checkpoint):
    x = wedged((14, 24, 20))
    write_mrc(tmp_path / "t.mrc", x, voxel_size=2.5)
    res = invoke(
        "predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc", "--overlap", "4",
        "--samples", "3", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    mean, std = read_mrc(tmp_path / "o.mrc"), read_mrc(tmp_path / "o_std.mrc")
    assert mean.shape == std.shape == x.shape and voxel_size(tmp_path / "o.mrc") == pytest.approx(
        2.5
    )
    assert np.isfinite(mean).all() and (std >= 0).all() and float(std.max()) > 0
    # the output exists now: refused without --overwrite, before any work
    res = invoke("predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc")
    one_line_error(res, "already exists; use --overwrite")


def test_cli_star_run_writes_every_file_and_the_star(tmp_path, checkpoint):
    from cryogen.io import CORRECTED_TOMO_NAME, read_star, tomograms_from_star, write_star

    data = tmp_path / "data"
    data.mkdir()
    vols = {"TS_01": wedged((14, 24, 20), seed=7), "TS_02": wedged((11, 19, 23), seed=8)}
    for name, v in vols.items():
        write_mrc(data / f"{name}.rec", v, voxel_size=2.5)
    frame = pd.DataFrame(
        {
            "rlnTomoName": [f"{n}.rec" for n in vols],
            "rlnPixelSize": [2.5, 2.5],
            "rlnTiltMin": [-60.0, -60.0],
            "rlnTiltMax": [60.0, 60.0],
        }
    )
    write_star(data / "tomograms.star", frame)
    out = tmp_path / "corrected"
    res = invoke(
        "predict", checkpoint, data / "tomograms.star", "-o", out, "--overlap", "4",
        "--samples", "2", "--keep-measured", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "TS_01_corrected.mrc",
        "TS_01_corrected_std.mrc",
        "TS_02_corrected.mrc",
        "TS_02_corrected_std.mrc",
        "tomograms_corrected.star",
    ]
    for name, v in vols.items():
        d = read_mrc(out / f"{name}_corrected.mrc")
        assert d.shape == v.shape
        assert measured_error(v, d) < 2e-6
    star = out / "tomograms_corrected.star"
    assert list(read_star(star)[CORRECTED_TOMO_NAME]) == [
        "TS_01_corrected.mrc",
        "TS_02_corrected.mrc",
    ]
    entries = tomograms_from_star(star)  # the rewritten paths still resolve
    assert [e.path.resolve() for e in entries] == [(data / f"{n}.rec").resolve() for n in vols]
    assert all(e.corrected_path.is_file() for e in entries)
    # a second run refuses to overwrite, and names the first existing file
    res = invoke("predict", checkpoint, data / "tomograms.star", "-o", out, "--quiet")
    one_line_error(res, "TS_01_corrected.mrc already exists")


def test_cli_several_mrc_files_go_to_a_folder(tmp_path, checkpoint):
    for n in ("a", "b"):
        write_mrc(tmp_path / f"{n}.mrc", wedged((9, 17, 12), seed=ord(n)))
    res = invoke(
        "predict", checkpoint, tmp_path / "a.mrc", tmp_path / "b.mrc", "-o", tmp_path / "o",
        "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "a_corrected.mrc",
        "b_corrected.mrc",
    ]
    res = invoke(
        "predict", checkpoint, tmp_path / "a.mrc", tmp_path / "b.mrc", "-o", tmp_path / "x.mrc"
    )
    one_line_error(res, "2 tomograms need an output folder")


def test_cli_errors_for_a_checkpoint_that_does_not_fit(tmp_path, checkpoint):
    from cryogen.io import write_star

    write_mrc(tmp_path / "t.mrc", wedged((10, 12, 12)))
    t, o = tmp_path / "t.mrc", tmp_path / "o.mrc"
    one_line_error(
        invoke("predict", checkpoint, t, "-o", o, "--tilt-min", "-50"),
        "trained for tilt range [-60, 60] deg, not the requested [-50, 60]",
    )
    one_line_error(
        invoke("predict", checkpoint, t, "-o", o, "--method", "isonet"),
        "trained with method 'cryogen', not the requested 'isonet'",
    )
    one_line_error(
        invoke("predict", tmp_path / "nothing.pt", t, "-o", o),
        "no such checkpoint file or run folder",
    )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    one_line_error(invoke("predict", tmp_path / "junk.pt", t, "-o", o), "not a readable CryoGEN")
    one_line_error(invoke("predict", checkpoint, tmp_path / "none.mrc", "-o", o), "not found")
    # a STAR row recorded with another tilt range
    write_star(
        tmp_path / "s.star",
        pd.DataFrame({"rlnTomoName": ["t.mrc"], "rlnTiltMin": [-54.0], "rlnTiltMax": [62.0]}),
    )
    one_line_error(
        invoke("predict", checkpoint, tmp_path / "s.star", "-o", tmp_path / "d"),
        "s.star, row 1: tilt range [-54, 62] deg, but",
    )
    # options are refused before the model is read, in the command line's terms
    one_line_error(invoke("predict", checkpoint, t, "-o", o, "--beam-axis", "x"), "--beam-axis")
    one_line_error(
        invoke("predict", checkpoint, t, "-o", o, "--tile", "8", "--overlap", "8"),
        "overlap (8) must be >= 0 and smaller than the tile (8)",
    )
    one_line_error(
        invoke("predict", checkpoint, t, "-o", o, "--overlap", "16"),
        "overlap (16) must be >= 0 and smaller than the tile (16)",
    )
    assert not o.exists()


def test_cli_tta_writes_the_rotation_average(tmp_path, checkpoint):
    x = wedged((14, 24, 20))
    write_mrc(tmp_path / "t.mrc", x, voxel_size=2.5)
    res = invoke(
        "predict", checkpoint, tmp_path / "t.mrc", "-o", tmp_path / "o.mrc", "--tta",
        "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = read_mrc(tmp_path / "o.mrc")
    options = PredictOptions(overlap=4, tta=True)
    ref = predict_volume(load_model(checkpoint, "cpu"), x, options)
    assert voxel_size(tmp_path / "o.mrc") == pytest.approx(2.5)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))


# ------------------------------------------------------------------------------ --blur
@pytest.fixture()
def half_set_files(tmp_path):
    """A tomogram (the mean), its two half-sets with independent noise where measured, and
    an identity model marked as trained on half-sets."""
    from cryogen.wedge import missing_wedge_mask
    from predict.fakes import identity_checkpoint

    x = wedged((30, 28, 26), scale=40.0)
    m = missing_wedge_mask(x.shape, -60, 60).numpy()
    rng = np.random.default_rng(0)
    halves = []
    for _ in (1, 2):
        white = rng.normal(size=x.shape)
        noise = np.fft.irfftn(np.fft.rfftn(white) * m, s=x.shape, axes=(0, 1, 2))
        halves.append((x + 3.0 * noise).astype(np.float32))
    paths = {}
    for name, v in (("tomo", (halves[0] + halves[1]) / 2), ("even", halves[0]), ("odd", halves[1])):
        paths[name] = tmp_path / f"{name}.mrc"
        write_mrc(paths[name], v, 1.0)
    paths["model"] = identity_checkpoint(tmp_path / "m.pt", x, half_sets=True)
    paths["plain_model"] = identity_checkpoint(tmp_path / "plain.pt", x)
    return paths


def test_cli_blur_auto_chooses_from_the_half_sets_and_blurs_last(tmp_path, half_set_files):
    from scipy.ndimage import gaussian_filter

    f = half_set_files
    res = invoke(
        "predict", f["model"], f["tomo"], "--halves", f["even"], f["odd"], "-o", tmp_path / "a.mrc",
        "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "chosen from the half-sets" in res.output, res.output
    sigma = float(res.output.split("blur of sigma ")[1].split(" voxels")[0])
    assert sigma > 0  # the identity model's output is the noisy mean
    res = invoke(
        "predict", f["model"], f["tomo"], "--blur", "none", "-o", tmp_path / "n.mrc",
        "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    plain = read_mrc(tmp_path / "n.mrc").astype(np.float64)
    want = gaussian_filter(plain, sigma, mode="nearest")
    np.testing.assert_allclose(read_mrc(tmp_path / "a.mrc"), want, atol=1e-3)
    assert voxel_size(tmp_path / "a.mrc") == pytest.approx(1.0)
    res = invoke(
        "predict", f["model"], f["tomo"], "--blur", "0.6", "-o", tmp_path / "f.mrc",
        "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    want = gaussian_filter(plain, 0.6, mode="nearest")
    np.testing.assert_allclose(read_mrc(tmp_path / "f.mrc"), want, atol=1e-3)


def test_cli_blur_auto_is_none_without_half_sets_or_a_half_set_model(tmp_path, half_set_files):
    f = half_set_files
    outs = []
    for i, (model, extra) in enumerate(
        [(f["model"], []), (f["plain_model"], ["--halves", f["even"], f["odd"]])]
    ):
        out = tmp_path / f"o{i}.mrc"
        res = invoke("predict", model, f["tomo"], *extra, "-o", out, "--device", "cpu")
        assert res.exit_code == 0, res.output
        assert "chosen from the half-sets" not in res.output
        assert ("give its half-sets" in res.output) == (i == 0), res.output
        outs.append(read_mrc(out))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


def test_cli_blur_errors(tmp_path, half_set_files):
    f = half_set_files
    res = invoke("predict", f["model"], f["tomo"], "--blur", "soft", "-o", tmp_path / "o.mrc")
    one_line_error(res, "--blur takes auto, none or a sigma")
    from cryogen.errors import InputError
    from cryogen.predict import plan_outputs

    with pytest.raises(InputError, match="give the tomograms to correct"):
        plan_outputs([], tmp_path / "o.mrc", halves=[(f["even"], f["odd"])])
    assert not (tmp_path / "o.mrc").exists()


def test_cli_refuses_half_sets_unlike_their_tomogram_before_the_model_loads(
    tmp_path, half_set_files
):
    """Shape, voxel size and tilt range are checked on the headers, with any --blur: a
    model that cannot be read is not reached."""
    from cryogen.io import write_tlt

    f = half_set_files
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    write_mrc(tmp_path / "small.mrc", wedged((30, 28, 20)), 1.0)
    write_mrc(tmp_path / "coarse.mrc", wedged((30, 28, 26)), 2.0)
    for odd, needle in (
        (tmp_path / "small.mrc", "small.mrc: shape (30, 28, 20), its tomogram's"),
        (tmp_path / "coarse.mrc", "coarse.mrc: voxel size 2 Å, its tomogram's"),
    ):
        for blur in ("auto", "none"):
            res = invoke(
                "predict", broken, f["tomo"], "--halves", f["even"], odd, "--blur", blur,
                "-o", tmp_path / "o.mrc", "--device", "cpu",
            )  # fmt: skip
            one_line_error(res, needle)
    write_tlt(tmp_path / "odd.tlt", np.linspace(-50, 50, 21))
    res = invoke(
        "predict", broken, f["tomo"], "--halves", f["even"], f["odd"], "--tilt-min", "-60",
        "--tilt-max", "60", "-o", tmp_path / "o.mrc", "--device", "cpu",
    )  # fmt: skip
    one_line_error(res, "odd.mrc: tilt range -50/50 (odd.tlt), its tomogram's -60/60")
    # without a recorded range for the tomogram, the half-set's own file is not compared
    res = invoke(
        "predict", broken, f["tomo"], "--halves", f["even"], f["odd"],
        "-o", tmp_path / "o.mrc", "--device", "cpu",
    )  # fmt: skip
    one_line_error(res, "broken.pt")  # the inputs passed; the model is what fails
    assert "tilt range" not in res.output
    assert not (tmp_path / "o.mrc").exists()
    res = invoke(
        "predict", f["model"], f["tomo"], "--halves", f["even"], tmp_path / "gone.mrc",
        "-o", tmp_path / "o.mrc",
    )  # fmt: skip
    one_line_error(res, "gone.mrc: file not found")
