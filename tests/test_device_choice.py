"""Threads and precision chosen from the machine: all available CPUs unless
OMP_NUM_THREADS says otherwise, bfloat16 only where the CPU really runs it faster."""

from __future__ import annotations

import io
import os

import pytest
import torch

import cryogen.device as device_mod
from cryogen.device import amp_choice, default_threads, setup_threads


@pytest.fixture()
def fresh_flags():
    device_mod.cpu_flags.cache_clear()
    yield
    device_mod.cpu_flags.cache_clear()


def test_default_threads_follow_omp_num_threads_else_the_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr(device_mod, "_cgroup_cpus", lambda: None)
    assert default_threads() == 6
    monkeypatch.setattr(device_mod, "_cgroup_cpus", lambda: 2)  # a container's CPU quota
    assert default_threads() == 2


def test_setup_threads_sets_the_default_or_the_given_count(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert setup_threads(None) == 2
        assert setup_threads(1) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("flags", "capability", "speedup", "dtype", "needle"),
    [
        ("avx2 fma", "AVX2", None, None, "no AVX-512"),
        ("avx512f avx512_bf16", "AVX512", None, torch.bfloat16, "avx512_bf16"),
        ("avx512f amx_bf16", "AVX512", None, torch.bfloat16, "amx_bf16"),
        # an Ice Lake class CPU: AVX-512 but no native bf16; the probe decides
        ("avx512f", "AVX512", 1.02, None, "not faster"),
        ("avx512f", "AVX512", 2.3, torch.bfloat16, "2.30x"),
    ],
)
def test_auto_precision_follows_what_the_cpu_accelerates(
    monkeypatch, fresh_flags, flags, capability, speedup, dtype, needle
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(
        device_mod, "open", lambda *a, **k: io.StringIO(f"flags\t: {flags}\n"), raising=False
    )

    def probe():
        if speedup is None:
            raise AssertionError("the flags decide: no probe")
        return speedup

    monkeypatch.setattr(device_mod, "bf16_speedup", probe)
    choice = amp_choice("auto", torch.device("cpu"))
    assert choice.dtype == dtype
    assert needle in choice.reason
    assert choice.name == ("bfloat16" if dtype else "float32")


def test_the_probe_measures_this_cpu():
    speedup = device_mod.bf16_speedup()
    assert 0.0 < speedup < 100.0


def test_a_busy_machine_is_reported(monkeypatch):
    from cryogen.device import busy_machine

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    assert "busy (load 8.0 on 2 CPUs)" in busy_machine(2)
    assert busy_machine(1) is None  # one thread cannot be slowed by its own barriers
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert busy_machine(2) is None
