"""``cryogen benchmark`` and ``cryogen demo``: end to end with tiny budgets, the bookkeeping
(scores equal a re-evaluation of the written volumes, curves start at the corrupted input and
end at the final score, both methods get the same config but the method), time to quality,
crash safety, and one-line errors for bad options."""

import json
import math

import numpy as np
import pytest
import torch

import cryogen.train
from cryogen.benchmark import BenchmarkSettings, largest_drop, run_benchmark
from cryogen.benchmark.results import BenchmarkResults, CurvePoint
from cryogen.metrics import evaluate
from cryogen.phantoms import paper_sphere
from cryogen.wedge import apply_missing_wedge
from support import TINY_NETWORK_SETTINGS, assert_one_line_error, read_mrc, run_cli, set_flags

TINY = set_flags(TINY_NETWORK_SETTINGS)
EVALUATE_KEYS = ("psnr", "ssim_global", "ssim_windowed", "wedge_corr", "res_z", "res_x", "fsc_res")


def tiny_settings(**kw):
    """Two steps of the tiny networks on a 32^3 sphere, one checkpoint, one after the other."""
    return BenchmarkSettings(
        "sphere",
        steps=2,
        size=32,
        overrides=TINY_NETWORK_SETTINGS,
        curve_points=1,
        concurrent=False,
        **kw,
    )


def close(a, b, tol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


# ------------------------------------------------------------------------------ end to end
@pytest.mark.benchmark
@pytest.mark.slow
def test_benchmark_sphere_end_to_end(tmp_path):
    out = tmp_path / "bench"
    # one after the other: training both at the same time is test_concurrent's
    r = run_cli(
        "benchmark", "sphere", "-o", out, "--size", 32, "--steps", 6, "--curve-points", 3,
        "--one-after-the-other", "--quiet", *TINY,
    )  # fmt: skip
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
    # the file reads back into the same results
    assert json.loads(json.dumps(BenchmarkResults.from_json(res).to_json())) == res

    # the case is the scaled paper sphere with the paper's wedge
    truth, corrupted = read_mrc(out / "volumes/truth.mrc"), read_mrc(out / "volumes/corrupted.mrc")
    np.testing.assert_array_equal(truth, paper_sphere(32).numpy())
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
    # the stability criterion from the same curves (a few steps: no checkpoint after
    # 2 minutes, so no value)
    assert res["stability"] == {
        m: largest_drop([CurvePoint.from_json(c) for c in res["curves"][m]])
        for m in ("isonet", "cryogen")
    }
    ttq = res["time_to_quality"]
    assert ttq["baseline_psnr"] == res["scores"]["isonet"]["psnr"]
    assert ttq["reached"] == any(
        c["psnr"] >= ttq["baseline_psnr"] for c in res["curves"]["cryogen"]
    )

    # the folder is not overwritten by accident
    r = run_cli("benchmark", "sphere", "-o", out, "--size", 32, "--steps", 1, *TINY)
    assert_one_line_error(r, "--overwrite")


@pytest.mark.benchmark
@pytest.mark.slow
def test_demo_prints_the_table(tmp_path):
    out = tmp_path / "demo"
    r = run_cli("demo", "-o", out, "--size", 32, "--steps", 3, *TINY)
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
    assert_one_line_error(run_cli("demo", "-o", out, "--size", 32, "--steps", 1), "--overwrite")


@pytest.mark.benchmark
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
    settings = tiny_settings()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(settings, tmp_path / "b")
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["status"] == "running"
    assert set(res["scores"]) == {"corrupted", "isonet"}
    assert res["curves"]["isonet"][-1]["step"] == 2
    assert (tmp_path / "b" / "figure_isonet.png").is_file()


@pytest.mark.benchmark
@pytest.mark.slow
def test_tta_predicts_both_methods_with_the_rotation_average(tmp_path):
    """``--tta``: the written predictions are ``predict_volume(..., tta=True)`` of each
    method's final checkpoint, and results.md says so."""
    from cryogen.predict import PredictOptions, load_model, predict_volume

    res = run_benchmark(tiny_settings(tta=True), tmp_path / "b")
    assert res.settings.tta is True
    corrupted = read_mrc(tmp_path / "b" / "volumes/corrupted.mrc")
    for m in ("isonet", "cryogen"):
        model = load_model(tmp_path / "b" / "runs" / m, "cpu")
        options = PredictOptions(tile=model.crop_size, overlap=4, tta=True)
        ref = predict_volume(model, corrupted, options)
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
        (["benchmark", "sphere", "--method", "isonet", "--method", "isonet"], ["each once"]),
        (["benchmark", "sphere", "--method", "gan"], ["--method"]),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, needles):
    out = tmp_path / "out"
    r = run_cli(*args, "-o", out)
    assert_one_line_error(r, *needles)
    assert not out.exists()


def test_output_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(
        run_cli("benchmark", "sphere", "-o", f, "--steps", 1, *TINY), "not a folder"
    )
    assert_one_line_error(run_cli("demo", "-o", f, "--steps", 1, *TINY), "not a folder")
