"""Choice of the compute device, the CPU thread count and the mixed-precision mode.

- :func:`default_threads`: the CPUs this process may use (``OMP_NUM_THREADS`` when set).
- :func:`setup_threads`: torch's thread count, by default :func:`default_threads`.
- :func:`amp_choice`, :func:`resolve_amp`: the autocast precision, bfloat16 only where the
  CPU really runs it faster than float32 (its flags, or a short timed probe where they do
  not settle it), with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Literal

import torch

from cryogen.errors import InputError

__all__ = [
    "AmpChoice",
    "amp_choice",
    "autocast",
    "bf16_speedup",
    "cpu_flags",
    "cpu_halves",
    "cpu_has_fast_bf16",
    "busy_machine",
    "default_threads",
    "pick_device",
    "resolve_amp",
    "setup_threads",
]

logger = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
AmpMode = Literal["auto", "off", "bf16", "fp16"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """Return the device to compute on.

    Parameters
    ----------
    name
        ``"auto"`` (CUDA, else Apple MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"mps"``.

    Raises
    ------
    InputError
        When the requested device is not available on this machine.
    """
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but CUDA is not available here")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s)"
            )
        return dev
    if name == "mps":
        if not _mps_available():
            raise InputError("device 'mps' requested but Apple MPS is not available here")
        return torch.device("mps")
    raise InputError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def _cgroup_cpus() -> int | None:
    """The CPUs a cgroup v2 quota allows (``cpu.max``: ``quota period``), or ``None``."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def default_threads() -> int:
    """The CPU threads a run uses unless told: ``OMP_NUM_THREADS`` when it is set (the
    convention of clusters and of ``torchrun``), else every CPU this process may run on
    (its affinity, capped by a cgroup CPU quota)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS, Windows
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(n, quota) if quota else n)


def busy_machine(threads: int) -> str | None:
    """A warning when ``threads`` threads would compete with other work for the CPUs (the
    1-minute load average plus ``threads`` above the CPUs), else ``None``.  Measured on a
    2-core machine at a load of 8: a training step took 3 times as long on 2 threads as on
    1 (docs/benchmarks.md)."""
    if threads < 2 or not hasattr(os, "getloadavg"):
        return None
    load, n_cpu = os.getloadavg()[0], os.cpu_count() or 1
    if load + threads <= n_cpu + 0.5:
        return None
    return (
        f"the machine is busy (load {load:.1f} on {n_cpu} CPUs): {threads} threads may run "
        "slower than fewer; set threads to the CPUs this run has to itself"
    )


def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU thread count; ``None``: :func:`default_threads`.

    Returns the number of threads in use afterwards.
    """
    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    n = default_threads() if threads is None else int(threads)
    n_cpu = os.cpu_count() or 1
    if n > n_cpu:
        logger.warning("%d threads requested on a machine with %d CPUs", n, n_cpu)
    torch.set_num_threads(n)
    return torch.get_num_threads()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read(200_000)
    except OSError:  # pragma: no cover - not Linux
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has optimised bfloat16 convolution kernels on this CPU: AVX-512 or
    newer (emulated without AVX512-BF16, native with it or AMX); below that it falls back
    to reference kernels, measured 14x *slower* than float32 for a U-Net++ training step on
    an AVX2-only EPYC.  Whether they are also *faster* than float32 is :func:`amp_choice`'s
    question."""
    try:
        cap = torch.backends.cpu.get_cpu_capability().upper()
    except Exception:  # pragma: no cover - very old torch
        cap = ""
    return "AVX512" in cap or "AMX" in cap or bool(_NATIVE_BF16 & cpu_flags())


#: Flags of CPUs that compute bfloat16 dot products natively.
_NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})
#: How much faster bf16 must be in the probe to be chosen.
_PROBE_MARGIN = 1.25


@functools.lru_cache(maxsize=1)
def bf16_speedup() -> float:
    """float32 time over bfloat16 time of a small 3D convolution's forward and backward
    pass on this CPU (best of a few rounds, interleaved; about half a second)."""
    conv = torch.nn.Conv3d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 24, 24, 24, requires_grad=True)

    def once(dtype: torch.dtype | None) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            y = conv(x)
        y.float().sum().backward()
        return time.perf_counter() - t0

    once(None), once(torch.bfloat16)  # warm-up: kernel creation
    fp32, bf16 = [], []
    for _ in range(3):
        fp32.append(once(None))
        bf16.append(once(torch.bfloat16))
    return min(fp32) / max(min(bf16), 1e-9)


@dataclass(frozen=True)
class AmpChoice:
    """A precision choice and why: ``dtype`` (``None``: float32) and ``reason``."""

    dtype: torch.dtype | None
    reason: str

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(
            self.dtype, str(self.dtype)
        )


def _cpu_auto() -> AmpChoice:
    flags = cpu_flags()
    native = sorted(_NATIVE_BF16 & flags)
    if native:
        return AmpChoice(torch.bfloat16, f"the CPU computes bfloat16 natively ({native[0]})")
    if not cpu_has_fast_bf16():
        return AmpChoice(None, "no AVX-512: bfloat16 would run on slow reference kernels")
    speedup = bf16_speedup()
    verdict = "faster" if speedup >= _PROBE_MARGIN else "not faster"
    return AmpChoice(
        torch.bfloat16 if speedup >= _PROBE_MARGIN else None,
        f"AVX-512 without native bfloat16: bfloat16 measured {speedup:.2f}x float32's speed "
        f"in a probe, {verdict} than float32",
    )


def amp_choice(mode: str, device: torch.device) -> AmpChoice:
    """The autocast precision of ``mode`` on ``device``, and why.

    ``"auto"``: bfloat16 on CUDA GPUs that support it (else float16); on a CPU, bfloat16
    where it computes bfloat16 natively (AVX512-BF16, AMX), float32 below AVX-512, and
    between the two (AVX-512 without native bfloat16) whatever a short timed probe finds
    faster (:func:`bf16_speedup`, at least 1.25x to pick bfloat16); float32 on MPS.  An
    explicit ``"bf16"`` on a CPU without AVX-512 is honoured with a warning.

    Raises
    ------
    InputError
        An unknown mode, or ``"fp16"`` on the CPU.
    """
    if mode == "off":
        return AmpChoice(None, "amp off")
    if mode == "bf16":
        if device.type == "cpu" and not cpu_has_fast_bf16():
            logger.warning(
                "bf16 on this CPU (%s, no AVX-512) runs convolutions on slow reference "
                "kernels, ~14x slower than float32 as measured; use amp 'auto' or 'off'",
                torch.backends.cpu.get_cpu_capability(),
            )
        return AmpChoice(torch.bfloat16, "amp bf16")
    if mode == "fp16":
        if device.type == "cpu":
            raise InputError("fp16 autocast is not supported on the CPU; use bf16 or off")
        return AmpChoice(torch.float16, "amp fp16")
    if mode != "auto":
        raise InputError(f"unknown amp mode {mode!r}: use auto, off, bf16 or fp16")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return AmpChoice(torch.bfloat16, "a CUDA GPU with bfloat16")
        return AmpChoice(torch.float16, "a CUDA GPU without bfloat16")
    if device.type == "cpu":
        return _cpu_auto()
    return AmpChoice(None, f"{device.type}: float32")


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of :func:`amp_choice` (``None``: full float32); the choice of
    ``"auto"`` and its reason are logged (INFO, ``cryogen.device``)."""
    choice = amp_choice(mode, device)
    if mode == "auto":
        logger.info("precision: %s (%s)", choice.name, choice.reason)
    return choice.dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``device`` with ``dtype``, or a no-op context when ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_halves() -> tuple[list[int], list[int]] | None:
    """This process's CPUs split in two halves (``None`` where affinity is not available or
    fewer than two CPUs are allowed)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]
