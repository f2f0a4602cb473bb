"""``cryogen benchmark --method M``: one method's rows measured alone, with the scores it has
in a benchmark of both (same seed, data and config), no comparison rows, and repeats that
report that method's medians."""

import json
from dataclasses import replace

import pytest

from cryogen.benchmark import BenchmarkResults, BenchmarkSettings, run_benchmark
from cryogen.benchmark.settings import METHODS
from cryogen.errors import InputError
from support import TINY_NETWORK_SETTINGS, run_cli, set_flags

TINY = set_flags(TINY_NETWORK_SETTINGS)


def tiny(**kw):
    return BenchmarkSettings(
        "sphere", steps=3, size=32, overrides=TINY_NETWORK_SETTINGS, curve_points=1, **kw
    )


@pytest.mark.benchmark
def test_one_method_scores_as_in_the_benchmark_of_both(tmp_path):
    both = run_benchmark(tiny(concurrent=False), tmp_path / "both")
    for m in METHODS:
        out = tmp_path / m
        res = run_benchmark(tiny(methods=(m,), concurrent=True), out)
        other = next(x for x in METHODS if x != m)
        assert res.settings.methods == (m,) and res.settings.concurrent is False
        assert set(res.scores) == {"corrupted", m}
        assert res.scores[m].metrics == both.scores[m].metrics  # the same run, bit for bit
        assert res.training[m].config == both.training[m].config
        assert res.time_to_quality is None and set(res.stability or {}) == {m}
        assert not any("IsoNet-style on" in t.name for t in res.targets)
        assert not (out / "runs" / other).exists()
        assert not (out / f"figure_{other}.png").exists()
        assert (out / f"figure_{m}.png").is_file() and (out / "psnr_vs_time.png").is_file()
        md = (out / "results.md").read_text()
        assert "Time to quality" not in md and f"figure_{other}" not in md
        # the file reads back with its method
        data = json.loads((out / "results.json").read_text())
        assert data["settings"]["methods"] == [m]
        assert BenchmarkResults.from_json(data).settings.methods == (m,)


def test_folders_written_before_the_option_trained_both():
    data = tiny().to_json()
    del data["methods"]
    assert BenchmarkSettings.from_json(data).methods == METHODS


@pytest.mark.parametrize("methods", [(), ("isonet", "isonet"), ("gan",)])
def test_bad_methods_are_refused(methods):
    with pytest.raises(InputError, match="each once"):
        replace(tiny(), methods=methods).check()


@pytest.mark.benchmark
def test_repeats_of_one_method_report_its_medians(tmp_path):
    out = tmp_path / "rep"
    args = ["benchmark", "sphere", "-o", out, "--size", 32, "--steps", 2, "--curve-points", 1]
    r = run_cli(*args, "--method", "cryogen", "--repeats", 2, "--quiet", *TINY)
    assert r.exit_code == 0, r.output
    assert "difference (median)" not in r.output
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]["median"]) == {"corrupted", "cryogen"}
    assert res["summary"]["paired"]["psnr"]["n"] == 0
    assert set(res["summary"]["stability"]) == {"cryogen"}
    md = (out / "results.md").read_text()
    assert "CryoGEN - IsoNet-style" not in md and "Time to quality" not in md
    assert "CryoGEN only" in md
    assert (out / "repeats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for seed in (0, 1):
        sub = json.loads((out / f"seed_{seed}" / "results.json").read_text())
        assert set(sub["scores"]) == {"corrupted", "cryogen"}
    # resuming with the other method is a different benchmark: refused
    r = run_cli(*args, "--method", "isonet", "--repeats", 2, "--resume", *TINY)
    assert r.exit_code != 0 and "methods" in r.output
