"""``cryogen benchmark --concurrent``: the two methods trained at the same time in two
processes give the very results of the same benchmark run one after the other (with a step
budget the runs are deterministic), progress comes back prefixed, and a child that fails or
dies is reported in one line once both have stopped; by default a CPU benchmark trains the
two at the same time, and a resumed repeat keeps how its finished seeds ran."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import cryogen.benchmark_repeats as br
from cryogen import benchmark
from cryogen.benchmark import (
    BenchmarkSettings,
    _MethodJob,
    _run_methods_concurrently,
    run_benchmark,
)
from cryogen.errors import OutputError
from test_bench import TINY, TINY_OVERRIDES, assert_one_line_error, read_mrc, run


def _settings(**kw):
    return BenchmarkSettings(
        "sphere", steps=3, size=32, overrides=TINY_OVERRIDES, curve_points=1, **kw
    )


def test_concurrent_equals_one_after_the_other(tmp_path):
    lines: list[str] = []
    seq = run_benchmark(_settings(concurrent=False), tmp_path / "seq")
    con = run_benchmark(_settings(concurrent=True), tmp_path / "con", say=lines.append)
    assert con["status"] == "complete" and con["settings"]["concurrent"] is True
    for m in ("isonet", "cryogen"):
        assert con["training"][m]["steps"] == seq["training"][m]["steps"] == 3

        def timeless(curve):
            return [{k: v for k, v in p.items() if k != "minutes"} for p in curve]

        assert timeless(con["curves"][m]) == timeless(seq["curves"][m])
        for key in ("psnr", "ssim_global", "wedge_corr", "res_z", "res_x"):
            assert con["scores"][m][key] == seq["scores"][m][key], (m, key)
        np.testing.assert_array_equal(
            read_mrc(tmp_path / "con" / "volumes" / f"{m}.mrc"),
            read_mrc(tmp_path / "seq" / "volumes" / f"{m}.mrc"),
        )
        assert (tmp_path / "con" / f"figure_{m}.png").is_file()
    assert con["files"] == seq["files"]
    assert (tmp_path / "con" / "psnr_vs_time.png").is_file()
    md = (tmp_path / "con" / "results.md").read_text()
    assert "at the same time" in md
    assert "one after the other" in (tmp_path / "seq" / "results.md").read_text()
    # progress of both children came back through the parent
    assert any(line.startswith("training IsoNet-style") for line in lines)
    assert any(line.startswith("training CryoGEN") for line in lines)
    halves = benchmark._cpu_halves()
    if halves is not None:  # seed 0: the baseline on the first half
        assert any("on CPUs" in line for line in lines)
        assert con["training"]["isonet"]["cpus"] == halves[0]
        assert con["training"]["cryogen"]["cpus"] == halves[1]


def test_concurrent_through_the_cli(tmp_path):
    out = tmp_path / "b"
    r = run(
        "benchmark", "sphere", "-o", out, "--size", 32, "--steps", 2, "--seed", 1,
        "--concurrent", *TINY,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["concurrent"] is True and res["status"] == "complete"
    assert set(res["scores"]) == {"corrupted", "isonet", "cryogen"}
    halves = benchmark._cpu_halves()
    if halves is not None:  # odd seeds swap the halves
        assert res["training"]["isonet"]["cpus"] == halves[1]
        assert res["training"]["cryogen"]["cpus"] == halves[0]


class _FailingJob(_MethodJob):
    """CryoGEN's child raises (or dies) before training; the baseline's finishes at once."""

    how: str = "raise"

    def run(self, method, cfg, *, progress, tell, on_stage, callback=None):
        if method == "cryogen":
            if self.how == "die":
                os._exit(3)
            raise ValueError("boom\n  (a second line)")
        tell("baseline done")
        on_stage("training", {"steps": 0})
        return {"score": {}, "first_pred": np.zeros((2, 2, 2), np.float32)}


class _DyingJob(_FailingJob):
    how = "die"


@pytest.mark.parametrize(
    "job_class, needle", [(_FailingJob, "ValueError: boom"), (_DyingJob, "exit code 3")]
)
def test_a_failing_child_is_one_line_after_both_stop(tmp_path, job_class, needle):
    settings = _settings(concurrent=True)
    configs = {m: benchmark._train_config(settings, m) for m in benchmark.METHODS}
    job = job_class(settings, [], [], 1.0, tmp_path, {})
    lines, stages = [], []
    with pytest.raises(OutputError) as info:
        _run_methods_concurrently(
            job, configs, lines.append, lambda m, k, v: stages.append((m, k, v))
        )
    text = str(info.value)
    assert "training CryoGEN failed" in text and needle in text and "\n" not in text
    assert "baseline done" in lines  # the other child's progress still came through
    assert [(m, k, v["steps"]) for m, k, v in stages] == [("isonet", "training", 0)]


def test_concurrent_error_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OutputError("training CryoGEN failed: ValueError: boom")

    monkeypatch.setattr(benchmark, "_run_methods_concurrently", fail)
    r = run(
        "benchmark",
        "sphere",
        "-o",
        tmp_path / "b",
        "--size",
        32,
        "--steps",
        1,
        "--concurrent",
        *TINY,
    )
    assert_one_line_error(r, "training CryoGEN failed")


# ------------------------------------------------------------------------------ the default
def test_the_default_trains_at_the_same_time_on_a_cpu_with_two_cpus(monkeypatch):
    import cryogen.device

    halves = ([0], [1])
    monkeypatch.setattr(benchmark, "_cpu_halves", lambda: halves)
    assert _settings().resolved().concurrent is True
    assert _settings(device="cpu").resolved().concurrent is True
    for given in (True, False):  # what is given is kept
        assert _settings(concurrent=given).resolved().concurrent is given
    monkeypatch.setattr(benchmark, "_cpu_halves", lambda: None)  # one CPU
    assert _settings().resolved().concurrent is False
    monkeypatch.setattr(benchmark, "_cpu_halves", lambda: halves)
    monkeypatch.setattr(cryogen.device, "pick_device", lambda name: torch.device("cuda"))
    assert _settings().resolved().concurrent is False  # one GPU: one after the other
    assert _settings(concurrent=True).resolved().concurrent is True


def _fake_runs(monkeypatch, calls):
    """``run_benchmark`` replaced by one that records the settings and writes a finished
    folder with a result computed from the seed."""
    from test_bench_repeats import fake_result

    def fake(settings, out, **kwargs):
        settings = settings.resolved()
        calls.append((settings.seed, settings.concurrent))
        res = fake_result(settings.seed, 30.0, 30.5)
        res["settings"] = dict(settings.__dict__)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(br, "run_benchmark", fake)


def test_repeats_decide_once_and_resume_as_the_finished_seeds_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "_cpu_halves", lambda: ([0], [1]))
    calls: list[tuple[int, bool]] = []
    _fake_runs(monkeypatch, calls)
    s = BenchmarkSettings("sphere", steps=2, size=32)
    res = br.run_benchmark_repeats(s, tmp_path / "auto", 2)
    assert calls == [(0, True), (1, True)] and res["settings"]["concurrent"] is True
    assert "at the same time" in (tmp_path / "auto" / "results.md").read_text()

    # seeds finished one after the other: resuming with the default keeps that
    calls.clear()
    br.run_benchmark_repeats(replace(s, concurrent=False), tmp_path / "seq", 2)
    calls.clear()
    res = br.run_benchmark_repeats(s, tmp_path / "seq", 3, resume=True)
    assert calls == [(2, False)] and res["settings"]["concurrent"] is False
    assert "one after the other" in (tmp_path / "seq" / "results.md").read_text()
    # ... a folder from before the option (no "concurrent" in its settings) too
    for seed in (0, 1, 2):
        f = tmp_path / "seq" / f"seed_{seed}" / "results.json"
        old = json.loads(f.read_text())
        del old["settings"]["concurrent"]
        f.write_text(json.dumps(old))
    calls.clear()
    br.run_benchmark_repeats(s, tmp_path / "seq", 4, resume=True)
    assert calls == [(3, False)]
    # asking for the other way on resume is refused, naming the option
    with pytest.raises(OutputError, match="other settings.*concurrent"):
        br.run_benchmark_repeats(replace(s, concurrent=True), tmp_path / "seq", 4, resume=True)
