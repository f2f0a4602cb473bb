"""``cryogen benchmark`` and ``cryogen demo``: end to end with tiny budgets, the bookkeeping
(scores equal a re-evaluation of the written volumes, curves start at the corrupted input and
end at the final score, both methods get the same config but the method), time to quality,
crash safety, and one-line errors for bad options."""

import json
import math

import mrcfile
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import cryogen.train
from cryogen.benchmark import (
    BenchmarkSettings,
    build_case,
    case_train_settings,
    corrupt,
    demo_sphere,
    largest_drop,
    rotate_volume,
    run_benchmark,
    time_to_quality,
)
from cryogen.cli import app
from cryogen.metrics import evaluate
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator

runner = CliRunner()

# tiny networks, full precision, so a few steps take seconds and are deterministic
TINY_OVERRIDES = {
    "amp": "off",
    "features": [4, 8],
    "energy_features": [4, 4],
    "energy_fc_features": [8],
    "adv_start": 0.0,
}
TINY = [a for k, v in TINY_OVERRIDES.items() for a in ("--set", f"{k}={json.dumps(v)}")]
EVALUATE_KEYS = ("psnr", "ssim_global", "ssim_windowed", "wedge_corr", "res_z", "res_x", "fsc_res")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


def read_mrc(path):
    with mrcfile.open(path, permissive=True) as m:
        return np.array(m.data, dtype=np.float32)


def close(a, b, tol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


# ------------------------------------------------------------------------------ end to end
def test_benchmark_sphere_end_to_end(tmp_path):
    out = tmp_path / "bench"
    r = run(
        "benchmark",
        "sphere",
        "-o",
        out,
        "--size",
        32,
        "--steps",
        6,
        "--curve-points",
        3,
        "--quiet",
        *TINY,
    )
    assert r.exit_code == 0, r.output
    for name in (
        "results.json",
        "results.md",
        "figure_isonet.png",
        "figure_cryogen.png",
        "psnr_vs_time.png",
        "volumes/truth.mrc",
        "volumes/corrupted.mrc",
        "volumes/isonet.mrc",
        "volumes/cryogen.mrc",
    ):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "complete" and res["scale_fit"] is True
    assert "least squares" in (out / "results.md").read_text()
    assert "CryoGEN" in r.output and "IsoNet-style" in r.output

    # the case is the scaled paper sphere with the paper's wedge
    truth, corrupted = read_mrc(out / "volumes/truth.mrc"), read_mrc(out / "volumes/corrupted.mrc")
    np.testing.assert_array_equal(truth, demo_sphere(32).numpy())
    np.testing.assert_allclose(
        corrupted, apply_missing_wedge(torch.from_numpy(truth), -60, 60), atol=1e-6
    )

    # every row holds every metric of evaluate and equals a re-evaluation of the written volumes
    for row, vol in (("corrupted", corrupted), ("isonet", None), ("cryogen", None)):
        sc = res["scores"][row]
        for key in EVALUATE_KEYS:
            assert key in sc, (row, key)
        pred = vol if vol is not None else read_mrc(out / f"volumes/{row}.mrc")
        ref = evaluate(pred, truth, tilt_min=-60, tilt_max=60, scale_fit=True)
        for key in ("psnr", "ssim_global", "ssim_windowed", "wedge_corr"):
            assert close(sc[key], ref[key], 1e-4), (row, key, sc[key], ref[key])
    assert abs(res["scores"]["corrupted"]["wedge_corr"]) < 1e-6

    # same budget, seed and data for both methods: the configs differ only in the method
    cfg = {m: dict(res["training"][m]["config"]) for m in ("isonet", "cryogen")}
    assert cfg["isonet"].pop("method") == "isonet" and cfg["cryogen"].pop("method") == "cryogen"
    assert cfg["isonet"] == cfg["cryogen"]
    assert cfg["isonet"]["features"] == [4, 8] and cfg["isonet"]["steps"] == 6
    for m in ("isonet", "cryogen"):
        assert res["training"][m]["steps"] == 6
        curve = res["curves"][m]
        # starts at the untrained (identity) generator = the corrupted input, ends at the final
        assert curve[0]["minutes"] == 0.0
        assert close(curve[0]["psnr"], res["scores"]["corrupted"]["psnr"])
        assert close(curve[-1]["psnr"], res["scores"][m]["psnr"], 1e-6)
        assert curve[-1]["step"] == 6 and len(curve) == 1 + 3
        minutes = [c["minutes"] for c in curve]
        assert minutes == sorted(minutes) and minutes[-1] > 0
    # issue 3's stability criterion from the same curves (a few steps: no checkpoint after
    # 2 minutes, so no value)
    assert res["stability"] == {m: largest_drop(res["curves"][m]) for m in ("isonet", "cryogen")}
    ttq = res["time_to_quality"]
    assert ttq["baseline_psnr"] == res["scores"]["isonet"]["psnr"]
    assert ttq["reached"] == any(
        c["psnr"] >= ttq["baseline_psnr"] for c in res["curves"]["cryogen"]
    )

    # the folder is not overwritten by accident
    r = run("benchmark", "sphere", "-o", out, "--size", 32, "--steps", 1, *TINY)
    assert_one_line_error(r, "--overwrite")


def test_demo_prints_the_table(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "-o", out, "--size", 32, "--steps", 3, *TINY)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for needle in ("corrupted", "corrected", "PSNR", "SSIM global", "wedge corr", "res_z", "res_x"):
        assert needle in text, r.output
    for name in ("figure.png", "scores.json", "truth.mrc", "corrupted.mrc", "corrected.mrc"):
        assert (out / name).is_file(), name
    res = json.loads((out / "scores.json").read_text())
    assert res["training"]["steps"] == 3 and res["scale_fit"] is True
    truth = read_mrc(out / "truth.mrc")
    ref = evaluate(read_mrc(out / "corrected.mrc"), truth, tilt_min=-60, tilt_max=60)
    assert close(res["corrected"]["psnr"], ref["psnr"], 1e-4)
    assert f"{res['corrupted']['psnr']:.2f}" in r.output
    assert_one_line_error(run("demo", "-o", out, "--size", 32, "--steps", 1), "--overwrite")


def test_a_crash_keeps_what_was_finished(tmp_path, monkeypatch):
    """results.json is rewritten after every stage: a crash in the second training leaves the
    corrupted and baseline scores on disk."""
    real_train = cryogen.train.train
    calls = []

    def flaky_train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(cryogen.train, "train", flaky_train)
    settings = BenchmarkSettings(
        "sphere", steps=2, size=32, overrides=TINY_OVERRIDES, curve_points=1, concurrent=False
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(settings, tmp_path / "b")
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["status"] == "running"
    assert set(res["scores"]) == {"corrupted", "isonet"}
    assert res["curves"]["isonet"][-1]["step"] == 2
    assert (tmp_path / "b" / "figure_isonet.png").is_file()


def test_tta_predicts_both_methods_with_the_rotation_average(tmp_path):
    """``--tta``: the written predictions are ``predict_volume(..., tta=True)`` of each
    method's final checkpoint, and results.md says so."""
    from cryogen.predict import load_model, predict_volume

    settings = BenchmarkSettings(
        "sphere",
        steps=2,
        size=32,
        overrides=TINY_OVERRIDES,
        curve_points=1,
        tta=True,
        concurrent=False,
    )
    res = run_benchmark(settings, tmp_path / "b")
    assert res["settings"]["tta"] is True
    corrupted = read_mrc(tmp_path / "b" / "volumes/corrupted.mrc")
    for m in ("isonet", "cryogen"):
        model = load_model(tmp_path / "b" / "runs" / m, "cpu")
        ref = predict_volume(model, corrupted, tile=model.crop_size, overlap=4, tta=True)
        np.testing.assert_allclose(
            read_mrc(tmp_path / "b" / f"volumes/{m}.mrc"), ref, rtol=1e-5, atol=1e-5
        )
    assert "`--tta`" in (tmp_path / "b" / "results.md").read_text()


# ------------------------------------------------------------------------------ bad options
@pytest.mark.parametrize(
    "args, needles",
    [
        (["benchmark", "cube"], ["unknown benchmark case", "sphere"]),
        (["benchmark", "sphere", "--tilt-min", 30, "--tilt-max", 10], ["--tilt-min"]),
        (["benchmark", "sphere", "--wedge", "radon"], ["--wedge", "tilt-series"]),
        (["benchmark", "sphere", "--set", "method=isonet"], ["method"]),
        (["benchmark", "sphere", "--set", "lr=-1"], ["lr"]),
        (["benchmark", "sphere", "--set", "lr"], ["KEY=VALUE"]),
        (["benchmark", "sphere", "--preset", "gpu"], ["preset"]),
        (["demo", "--set", "crop_size=4"], ["crop_size"]),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, needles):
    out = tmp_path / "out"
    r = run(*args, "-o", out)
    assert_one_line_error(r, *needles)
    assert not out.exists()


def test_output_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(run("benchmark", "sphere", "-o", f, "--steps", 1, *TINY), "not a folder")
    assert_one_line_error(run("demo", "-o", f, "--steps", 1, *TINY), "not a folder")


# ------------------------------------------------------------------------------ pieces
def test_time_to_quality_interpolates_between_checkpoints():
    curve = [
        {"minutes": 0.0, "psnr": 20.0},
        {"minutes": 1.0, "psnr": 24.0},
        {"minutes": 2.0, "psnr": 26.0},
        {"minutes": 3.0, "psnr": 25.0},
    ]
    t = time_to_quality(25.0, 10.0, curve)
    assert t["reached"] and t["minutes"] == pytest.approx(1.5)
    assert t["minutes_checkpoint"] == 2.0
    assert t["fraction"] == pytest.approx(0.15) and t["fraction_checkpoint"] == pytest.approx(0.2)
    t = time_to_quality(30.0, 10.0, curve)
    assert not t["reached"] and t["minutes"] is None and t["fraction"] is None
    t = time_to_quality(19.0, 10.0, curve)  # already there untrained
    assert t["reached"] and t["minutes"] == 0.0


def test_largest_drop_is_issue_3s_stability_criterion():
    curve = [
        {"minutes": 0.0, "psnr": 20.0},
        {"minutes": 1.0, "psnr": 30.0},
        {"minutes": 2.0, "psnr": 29.0},  # not after the first 2 minutes: not counted
        {"minutes": 3.0, "psnr": 28.5},  # 1.5 below the best before it (30 at 1 min)
        {"minutes": 4.0, "psnr": 31.0},
        {"minutes": 5.0, "psnr": 30.8},
    ]
    assert largest_drop(curve) == pytest.approx(1.5)
    assert largest_drop(curve, after_minutes=3.0) == pytest.approx(0.2)
    assert largest_drop(curve[::-1]) == pytest.approx(1.5)  # order of the points is time's
    rising = [{"minutes": float(m), "psnr": 20.0 + m} for m in range(6)]
    assert largest_drop(rising) == 0.0
    assert largest_drop(curve[:3]) is None  # nothing after 2 minutes
    assert largest_drop([{"minutes": 3.0, "psnr": 30.0}]) is None  # nothing before it
    assert largest_drop([]) is None


def test_stability_is_reported_with_the_targets():
    from cryogen.benchmark import _targets, render_markdown

    scores = {m: {"psnr": 30.0, "ssim_global": 0.9} for m in ("corrupted", "isonet", "cryogen")}
    checks = _targets("sphere", scores, True, drop=1.2)
    [stable] = [c for c in checks if "stable" in c["target"]]
    assert not stable["met"] and "1.20 dB" in stable["value"]
    assert [c for c in _targets("sphere", scores, True, drop=0.4) if "stable" in c["target"]][0][
        "met"
    ]
    assert not [c for c in _targets("sphere", scores, True) if "stable" in c["target"]]
    results = {
        "settings": dict(BenchmarkSettings("sphere", concurrent=True).__dict__),
        "scores": scores,
        "stability": {"isonet": 1.38, "cryogen": None},
        "targets": checks,
    }
    text = render_markdown(results)
    assert "**Stability**" in text and "IsoNet-style 1.38 dB" in text
    assert "CryoGEN n/a (no checkpoint after 2 min)" in text
    assert "CryoGEN stable: after 2 min no checkpoint more than 1 dB" in text and "MISSED" in text


def test_case_settings_follow_the_paper():
    assert case_train_settings("sphere") == {"subtomo_size": 96, "crop_size": 64, "n_subtomos": 10}
    assert case_train_settings("prism") == {"subtomo_size": 96, "crop_size": 64, "n_subtomos": 1}
    s = case_train_settings("sphere", 64)
    assert s["crop_size"] <= s["subtomo_size"] <= 64


def test_prism_case_is_ten_wedged_prisms():
    case = build_case("prism", size=24, seed=1)
    assert len(case.truth) == len(case.corrupted) == 10
    assert case.train_settings["subtomo_size"] == 24 and case.train_settings["n_subtomos"] == 1
    for t, c in zip(case.truth, case.corrupted, strict=True):
        torch.testing.assert_close(c, apply_missing_wedge(t, -60, 60))
    assert not torch.equal(case.truth[0], case.truth[1])  # different orientations


def test_noise_stays_in_the_measured_region_at_the_asked_snr():
    x = demo_sphere(24)
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
