"""``cryogen benchmark --concurrent``: the two methods trained at the same time in two
processes give the very results of the same benchmark run one after the other (with a step
budget the runs are deterministic), progress comes back prefixed, and a child that fails or
dies is reported in one line once both have stopped; by default a CPU benchmark trains the
two at the same time."""

import json
import os

import numpy as np
import pytest
import torch

import cryogen.benchmark.run as bench_run
from cryogen import device
from cryogen.benchmark import (
    METHODS,
    BenchmarkSettings,
    CurvePoint,
    MethodJob,
    MethodOutcome,
    Scores,
    TrainingRecord,
    run_benchmark,
    train_config,
)
from cryogen.benchmark.concurrent import run_methods_concurrently
from cryogen.errors import OutputError
from support import TINY_NETWORK_SETTINGS, assert_one_line_error, read_mrc, run_cli, set_flags

TINY = set_flags(TINY_NETWORK_SETTINGS)


def _settings(**kw):
    return BenchmarkSettings(
        "sphere", steps=3, size=32, overrides=TINY_NETWORK_SETTINGS, curve_points=1, **kw
    )


@pytest.mark.benchmark
@pytest.mark.slow
@pytest.mark.distributed
def test_concurrent_through_the_cli_equals_one_after_the_other(tmp_path):
    """One concurrent run through the command line (an odd seed: the halves swap) against the
    same benchmark run one after the other through the library."""
    seq = run_benchmark(_settings(concurrent=False, seed=1), tmp_path / "seq").to_json()
    out = tmp_path / "con"
    r = run_cli(
        "benchmark", "sphere", "-o", out, "--size", 32, "--steps", 3, "--curve-points", 1,
        "--seed", 1, "--concurrent", *TINY,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    con = json.loads((out / "results.json").read_text())
    assert con["status"] == "complete" and con["settings"]["concurrent"] is True
    assert set(con["scores"]) == {"corrupted", "isonet", "cryogen"}
    bf16 = device.amp_choice("auto", torch.device("cpu")).dtype is not None
    rel = 1e-2 if bf16 else 1e-7
    for m in ("isonet", "cryogen"):
        assert con["training"][m]["steps"] == seq["training"][m]["steps"] == 3

        # trained on one thread, the weights are the same bit for bit; the children score on
        # one CPU each and the reference on all of them, and float sums depend on the number of
        # threads: in the last bits in float32, more where prediction runs in bf16 (AMX, BF16)
        def timeless(curve):
            return [{k: v for k, v in p.items() if k != "minutes"} for p in curve]

        for got, want in zip(timeless(con["curves"][m]), timeless(seq["curves"][m]), strict=True):
            assert got.keys() == want.keys()
            for k, v in want.items():
                assert got[k] == (pytest.approx(v, rel=rel) if isinstance(v, float) else v), k
        for key in ("psnr", "ssim_global", "wedge_corr", "res_z", "res_x"):
            assert con["scores"][m][key] == pytest.approx(seq["scores"][m][key], rel=rel), key
        want = read_mrc(tmp_path / "seq" / "volumes" / f"{m}.mrc")
        np.testing.assert_allclose(
            read_mrc(out / "volumes" / f"{m}.mrc"), want, rtol=0, atol=rel * np.abs(want).max()
        )
        assert (out / f"figure_{m}.png").is_file()
    assert con["files"] == seq["files"]
    assert (out / "psnr_vs_time.png").is_file()
    assert "at the same time" in (out / "results.md").read_text()
    assert "one after the other" in (tmp_path / "seq" / "results.md").read_text()
    # progress of both children came back through the parent
    lines = [line.removeprefix("> ") for line in r.output.splitlines()]
    assert any(line.startswith("training IsoNet-style") for line in lines)
    assert any(line.startswith("training CryoGEN") for line in lines)
    halves = device.cpu_halves()
    if halves is not None:  # odd seeds swap the halves
        assert "on CPUs" in r.output
        assert con["training"]["isonet"]["cpus"] == halves[1]
        assert con["training"]["cryogen"]["cpus"] == halves[0]


class FailingJob(MethodJob):
    """CryoGEN's child raises (or dies) before training; the baseline's finishes at once."""

    how: str = "raise"

    def run(self, method, cfg, *, progress, tell, on_stage, callback=None):
        if method == "cryogen":
            if self.how == "die":
                os._exit(3)
            raise ValueError("boom\n  (a second line)")
        tell("baseline done")
        on_stage("training", TrainingRecord(steps=0, minutes=0.0))
        return MethodOutcome(Scores({}), np.zeros((2, 2, 2), np.float32))


class DyingJob(FailingJob):
    how = "die"


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(
    "job_class, needle", [(FailingJob, "ValueError: boom"), (DyingJob, "exit code 3")]
)
def test_a_failing_child_is_one_line_after_both_stop(tmp_path, job_class, needle):
    settings = _settings(concurrent=True)
    configs = {m: train_config(settings, m) for m in METHODS}
    job = job_class(settings, [], [], 1.0, tmp_path, CurvePoint(0.0, None))
    lines, stages = [], []
    with pytest.raises(OutputError) as info:
        run_methods_concurrently(
            job, configs, lines.append, lambda m, k, v: stages.append((m, k, v))
        )
    text = str(info.value)
    assert "training CryoGEN failed" in text and needle in text and "\n" not in text
    assert "baseline done" in lines  # the other child's progress still came through
    assert [(m, k, v.steps) for m, k, v in stages] == [("isonet", "training", 0)]


def test_concurrent_error_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OutputError("training CryoGEN failed: ValueError: boom")

    monkeypatch.setattr(bench_run, "run_methods_concurrently", fail)
    r = run_cli(
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
    monkeypatch.setattr(device, "cpu_halves", lambda: halves)
    assert _settings().resolved().concurrent is True
    assert _settings(device="cpu").resolved().concurrent is True
    for given in (True, False):  # what is given is kept
        assert _settings(concurrent=given).resolved().concurrent is given
    monkeypatch.setattr(device, "cpu_halves", lambda: None)  # one CPU
    assert _settings().resolved().concurrent is False
    monkeypatch.setattr(device, "cpu_halves", lambda: halves)
    monkeypatch.setattr(cryogen.device, "pick_device", lambda name: torch.device("cuda"))
    assert _settings().resolved().concurrent is False  # one GPU: one after the other
    assert _settings(concurrent=True).resolved().concurrent is True
