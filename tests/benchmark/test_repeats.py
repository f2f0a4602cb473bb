"""``cryogen benchmark --repeats N``: medians and paired differences over seeds, one complete
single-run folder per seed, resume that keeps finished seeds (and refuses other settings,
and keeps how the finished seeds trained), crash safety, and one-line errors."""

import json
import math
from dataclasses import replace

import pytest

import cryogen.benchmark.repeats as repeats
from cryogen import device
from cryogen.benchmark import (
    METHODS,
    BenchmarkResults,
    BenchmarkSettings,
    RepeatResults,
    render_repeats_markdown,
    repeat_targets,
    run_benchmark_repeats,
    summarise_repeats,
)
from cryogen.errors import InputError, OutputError
from cryogen.metrics import METRICS
from support import TINY_NETWORK_SETTINGS, assert_one_line_error, run_cli, set_flags

TINY = set_flags(TINY_NETWORK_SETTINGS)


def fake_result(seed, iso_psnr, cg_psnr, ttq=None, settings=None):
    """A complete single-run results.json content with chosen PSNRs (other metrics derived)."""

    def scores(p):
        return {
            "psnr": p,
            "ssim_global": p / 100.0,
            "ssim_windowed": p / 200.0,
            "wedge_corr": p / 50.0,
            "res_z": 100.0 - p,  # lower is better: higher PSNR -> better resolution
            "res_x": 2.0,
            "fsc_res": float("nan"),  # never reached: left out, as score_volumes does
            "mse": 10 ** (-p / 10),
        }

    s = {**(settings or {"case": "sphere", "minutes": 5.0}), "seed": seed}
    return {
        "status": "complete",
        "settings": s,
        "description": "a fake case",
        "scores": {
            "corrupted": scores(20.0),
            "isonet": scores(iso_psnr),
            "cryogen": scores(cg_psnr),
        },
        "training": {m: {"steps": 100 + seed, "minutes": 5.0} for m in METHODS},
        "time_to_quality": {
            "baseline_psnr": iso_psnr,
            "baseline_minutes": 5.0,
            "reached": ttq is not None,
            "fraction": ttq,
        },
    }


def loaded(*runs):
    return [BenchmarkResults.from_json(r) for r in runs]


# ------------------------------------------------------------------------------ the summary
def test_summary_medians_and_paired_differences():
    s = summarise_repeats(
        loaded(
            fake_result(2, 30.0, 31.0, ttq=0.5),
            fake_result(0, 32.0, 31.5),
            fake_result(1, 31.0, 30.0, ttq=0.9),
        )
    )
    assert s.seeds == [0, 1, 2]  # sorted by seed
    assert s.median["isonet"]["psnr"] == 31.0 and s.median["cryogen"]["psnr"] == 31.0
    assert s.minimum["cryogen"]["psnr"] == 30.0 and s.maximum["isonet"]["psnr"] == 32.0
    assert s.median["isonet"]["steps"] == 101
    # paired differences per seed: seed 0 -0.5, seed 1 -1.0, seed 2 +1.0
    assert [e.diff["psnr"] for e in s.per_seed] == [-0.5, -1.0, 1.0]
    p = s.paired["psnr"]
    assert p.median == -0.5 and math.isclose(p.mean, -0.5 / 3)
    assert (p.ahead, p.behind, p.n) == (1, 2, 3)
    # the median of differences is not the difference of medians (here 0 vs -0.5)
    assert s.median["cryogen"]["psnr"] - s.median["isonet"]["psnr"] == 0.0
    # lower-is-better metrics count the other way: res_z diff = -(psnr diff)
    r = s.paired["res_z"]
    assert (r.ahead, r.behind, r.median) == (1, 2, 0.5)
    # a metric that is never finite has no median and no comparisons
    assert s.median["cryogen"]["fsc_res"] is None and s.paired["fsc_res"].n == 0
    # time to quality: "not reached" ranks above every fraction
    t = s.time_to_quality
    assert t.fractions == [None, 0.9, 0.5] and t.reached == 2
    assert t.median_fraction == 0.9


def test_stability_over_seeds_from_the_curves():
    def curve(*psnrs):  # one checkpoint per minute from 0
        return [{"minutes": float(i), "psnr": p} for i, p in enumerate(psnrs)]

    runs = [fake_result(s, 30.0, 30.0) for s in range(3)]
    runs[0]["curves"] = {"isonet": curve(20, 30, 30, 28.6, 30), "cryogen": curve(20, 29, 30, 30)}
    runs[1]["curves"] = {"isonet": curve(20, 30, 31, 30.9), "cryogen": curve(20, 29, 30, 29.5)}
    # runs[2] has no curves (a fake): no drop, not counted
    s = summarise_repeats(loaded(*runs))
    assert [e.drop["isonet"] for e in s.per_seed] == [
        pytest.approx(1.4),
        pytest.approx(0.1),
        None,
    ]
    st = s.stability
    assert st["isonet"].max_drop == pytest.approx(1.4) and st["isonet"].stable == 1
    assert st["isonet"].n == 2
    assert st["cryogen"].max_drop == pytest.approx(0.5) and st["cryogen"].stable == 2
    checks = repeat_targets("sphere", s, True)
    [stable] = [c for c in checks if "stable" in c.target]
    assert stable.met and "stable on 2 of 2 seeds" in stable.value
    results = RepeatResults(
        settings=BenchmarkSettings("sphere", concurrent=True),
        seeds=[0, 1, 2],
        summary=s,
        targets=checks,
    )
    text = render_repeats_markdown(results)
    assert "IsoNet-style at most 1.40 dB, within 1 dB on 1 of 2 seeds" in text
    assert "| 1.40 dB / 0.00 dB |" in text and "| n/a / n/a |" in text
    assert "Targets on the medians (set for 15 minutes of training per method):" in text


def test_time_to_quality_median_not_reached_when_most_seeds_miss():
    runs = loaded(fake_result(0, 30, 29), fake_result(1, 30, 29), fake_result(2, 30, 31, ttq=0.3))
    assert summarise_repeats(runs).time_to_quality.median_fraction is None


def test_markdown_lists_every_seed_and_the_medians():
    runs = loaded(fake_result(0, 32.0, 31.5), fake_result(1, 31.0, 30.0, ttq=0.9))
    results = RepeatResults(
        settings=BenchmarkSettings("sphere", minutes=5.0, concurrent=False),
        seeds=[0, 1, 2],
        summary=summarise_repeats(runs),
        status="running",
    )
    text = render_repeats_markdown(results)
    assert "Seeds finished: 2 of 3" in text
    assert "| 0 | 20.00 / 0.2000 | 32.00 / 0.3200; 100 | 31.50 / 0.3150; 100 | -0.50 dB" in text
    assert "| 1 |" in text and "0.90 |" in text and "not reached |" in text
    assert "31.50 [31.00, 32.00]" in text  # IsoNet-style median [min, max]
    assert "| CryoGEN better on | 0 of 2 |" in text
    for key, metric in METRICS.items():
        if key != "mse":
            assert metric.label in text
    # the file reads back into the same results
    text = json.dumps(results.to_json())
    assert json.dumps(RepeatResults.from_json(json.loads(text)).to_json()) == text


# ------------------------------------------------------------------------------ running
@pytest.mark.benchmark
@pytest.mark.slow
def test_repeats_end_to_end_and_resume(tmp_path):
    """Two seeds through the CLI; then three with --resume keeps the first two untouched and
    runs only the third; the summary equals one computed from the seed folders."""
    out = tmp_path / "rep"
    args = ["benchmark", "sphere", "-o", out, "--one-after-the-other", "--size", 32, "--steps", 2]
    args += ["--curve-points", 1]
    r = run_cli(*args, "--repeats", 2, "--quiet", *TINY)
    assert r.exit_code == 0, r.output
    assert "medians over seeds 0, 1" in " ".join(r.output.split())
    for name in ("results.json", "results.md", "repeats.png"):
        assert (out / name).is_file(), name
    assert (out / "repeats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for seed in (0, 1):
        sub = json.loads((out / f"seed_{seed}" / "results.json").read_text())
        assert sub["status"] == "complete" and sub["settings"]["seed"] == seed
        assert (out / f"seed_{seed}" / "figure_cryogen.png").is_file()
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "complete" and res["seeds"] == [0, 1]
    assert "seed" not in res["settings"]
    subs = [json.loads((out / f"seed_{s}" / "results.json").read_text()) for s in (0, 1)]
    # through JSON as the file
    ref = json.loads(json.dumps(summarise_repeats(loaded(*subs)).to_json()))
    assert res["summary"]["paired"] == ref["paired"]
    assert res["summary"]["median"] == ref["median"]
    # the two seeds are different draws (other subtomogram origins and training draws)
    assert subs[0]["scores"]["isonet"]["psnr"] != subs[1]["scores"]["isonet"]["psnr"]

    # again without --resume or --overwrite: refused, nothing touched
    assert_one_line_error(run_cli(*args, "--repeats", 2, *TINY), "--resume", "--overwrite")

    before = {s: (out / f"seed_{s}" / "results.json").read_text() for s in (0, 1)}
    r = run_cli(*args, "--repeats", 3, "--resume", "--quiet", *TINY)
    assert r.exit_code == 0, r.output
    assert "kept the finished run" in r.output
    for s in (0, 1):
        assert (out / f"seed_{s}" / "results.json").read_text() == before[s]
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1, 2] and [x["kept"] for x in res["runs"]] == [True, True, False]
    assert res["summary"]["paired"]["psnr"]["n"] == 3

    # resuming with other settings is refused, names what differs, and leaves the summary
    summary_before = (out / "results.json").read_text()
    assert_one_line_error(
        run_cli(*args[:-4], "--steps", 3, "--curve-points", 1, "--repeats", 2, "--resume", *TINY),
        "other settings",
        "steps",
    )
    assert (out / "results.json").read_text() == summary_before


def _fake_runs(monkeypatch, calls, crash_once=None):
    """``run_benchmark`` replaced by one that records the settings and writes a finished
    folder with a result computed from the seed (raising once for the seed ``crash_once``)."""
    crashed = []

    def fake(settings, out, **kwargs):
        settings = settings.resolved()
        calls.append((settings.seed, settings.concurrent))
        if settings.seed == crash_once and not crashed:
            crashed.append(1)
            raise RuntimeError("simulated crash")
        res = fake_result(settings.seed, 30.0, 31.0)
        res["settings"] = settings.to_json()
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(res))
        return BenchmarkResults.from_json(res)

    monkeypatch.setattr(repeats, "run_benchmark", fake)


def test_a_crash_keeps_the_finished_seeds(tmp_path, monkeypatch):
    calls = []
    _fake_runs(monkeypatch, calls, crash_once=6)  # the second seed crashes, once
    settings = BenchmarkSettings("sphere", steps=2, size=32, seed=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark_repeats(settings, tmp_path / "r", 3)
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["status"] == "running" and res["summary"]["seeds"] == [5]
    assert [seed for seed, _ in calls] == [5, 6]
    # resume runs seeds 6 and 7 only
    calls.clear()
    res = run_benchmark_repeats(settings, tmp_path / "r", 3, resume=True)
    assert [seed for seed, _ in calls] == [6, 7] and res.status == "complete"
    assert res.summary.paired["psnr"].ahead == 3


def test_repeats_decide_once_and_resume_as_the_finished_seeds_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_halves", lambda: ([0], [1]))
    calls: list[tuple[int, bool]] = []
    _fake_runs(monkeypatch, calls)
    s = BenchmarkSettings("sphere", steps=2, size=32)
    res = run_benchmark_repeats(s, tmp_path / "auto", 2)
    assert calls == [(0, True), (1, True)] and res.settings.concurrent is True
    assert "at the same time" in (tmp_path / "auto" / "results.md").read_text()

    # seeds finished one after the other: resuming with the default keeps that
    calls.clear()
    run_benchmark_repeats(replace(s, concurrent=False), tmp_path / "seq", 2)
    calls.clear()
    res = run_benchmark_repeats(s, tmp_path / "seq", 3, resume=True)
    assert calls == [(2, False)] and res.settings.concurrent is False
    assert "one after the other" in (tmp_path / "seq" / "results.md").read_text()
    # ... a folder from before the option (no "concurrent" in its settings) too
    for seed in (0, 1, 2):
        f = tmp_path / "seq" / f"seed_{seed}" / "results.json"
        old = json.loads(f.read_text())
        del old["settings"]["concurrent"]
        f.write_text(json.dumps(old))
    calls.clear()
    run_benchmark_repeats(s, tmp_path / "seq", 4, resume=True)
    assert calls == [(3, False)]
    # asking for the other way on resume is refused, naming the option
    with pytest.raises(OutputError, match="other settings.*concurrent"):
        run_benchmark_repeats(replace(s, concurrent=True), tmp_path / "seq", 4, resume=True)


@pytest.mark.parametrize(
    ("n", "kwargs", "needle"),
    [
        (1, {}, "at least 2"),
        (2, {"overwrite": True, "resume": True}, "exclude each other"),
    ],
)
def test_bad_repeat_options(tmp_path, n, kwargs, needle):
    with pytest.raises(InputError, match=needle):
        run_benchmark_repeats(BenchmarkSettings("sphere", steps=1), tmp_path / "x", n, **kwargs)
    assert not (tmp_path / "x").exists()


def test_resume_needs_repeats(tmp_path):
    assert_one_line_error(
        run_cli("benchmark", "sphere", "-o", tmp_path / "x", "--resume"), "--repeats"
    )
    assert not (tmp_path / "x").exists()


def test_output_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        run_benchmark_repeats(BenchmarkSettings("sphere", steps=1), f, 2)
