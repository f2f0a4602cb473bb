"""The demo trains for a number of steps, reports the time left, and says when a time
budget gave too few steps to mean anything."""

from __future__ import annotations

import pytest

from cryogen.benchmark.demo import DEMO_STEPS, MEANINGFUL_STEPS, run_demo
from cryogen.errors import InputError
from support import TINY_NETWORK_SETTINGS, run_cli


def test_the_demo_budget_is_steps_by_default():
    assert "600" in " ".join(run_cli("demo", "--help").output.split()) and DEMO_STEPS == 600
    with pytest.raises(InputError, match="steps or minutes, not both"):
        run_demo("unused", steps=10, minutes=1.0)


@pytest.mark.benchmark
def test_a_short_time_budget_is_reported_as_saying_little(tmp_path):
    said: list[str] = []
    res = run_demo(
        tmp_path / "demo", minutes=0.01, size=32, overrides=dict(TINY_NETWORK_SETTINGS),
        say=said.append,
    )  # fmt: skip
    assert res.steps < MEANINGFUL_STEPS
    assert any(f"only {res.steps} steps fit" in s and "say little" in s for s in said), said
    said.clear()
    run_demo(
        tmp_path / "demo", steps=20, size=32, overrides=dict(TINY_NETWORK_SETTINGS),
        say=said.append, overwrite=True,
    )  # fmt: skip
    assert not any("say little" in s for s in said)
    reports = [s for s in said if s.strip().startswith("step ") and "min left" in s]
    assert len(reports) >= 8, said  # about every tenth of the run
