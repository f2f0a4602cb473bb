"""Choice of the compute device, the CPU thread count and the mixed-precision mode."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Literal

import torch

from cryogen.errors import InputError

__all__ = [
    "autocast",
    "cpu_halves",
    "cpu_has_fast_bf16",
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


def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU thread count; ``None`` keeps torch's default.

    Returns the number of threads in use afterwards.
    """
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        n_cpu = os.cpu_count() or 1
        if threads > n_cpu:
            logger.warning("%d threads requested on a machine with %d CPUs", threads, n_cpu)
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def cpu_has_fast_bf16() -> bool:
    """True when bfloat16 convolutions are fast on this CPU (AVX-512 or newer).

    oneDNN has optimised bfloat16 convolution kernels from AVX-512 on (emulated without
    AVX512-BF16, native with it or AMX); below that it falls back to reference kernels.
    Measured on the project's 2-core machines, a U-Net++ training step: 2.3x *faster* in
    bf16 than in float32 on an AVX-512 EPYC without AVX512-BF16, 14x *slower* on an
    AVX2-only EPYC (docs/benchmarks.md).
    """
    try:
        cap = torch.backends.cpu.get_cpu_capability().upper()
    except Exception:  # pragma: no cover - very old torch
        cap = ""
    if "AVX512" in cap or "AMX" in cap:
        return True
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read(200_000)
    except OSError:  # pragma: no cover - not Linux
        return False
    return "avx512_bf16" in text or "amx_bf16" in text


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``mode`` on ``device`` (``None``: full float32).

    ``"auto"``: bfloat16 on CUDA GPUs that support it (else float16), bfloat16 on CPUs
    where it is fast (:func:`cpu_has_fast_bf16`), float32 otherwise (and on MPS).  An
    explicit ``"bf16"`` on a CPU where it is slow is honoured with a warning.
    """
    if mode == "off":
        return None
    if mode == "bf16":
        if device.type == "cpu" and not cpu_has_fast_bf16():
            logger.warning(
                "bf16 on this CPU (%s, no AVX-512) runs convolutions on slow reference "
                "kernels, ~14x slower than float32 as measured; use amp 'auto' or 'off'",
                torch.backends.cpu.get_cpu_capability(),
            )
        return torch.bfloat16
    if mode == "fp16":
        if device.type == "cpu":
            raise InputError("fp16 autocast is not supported on the CPU; use bf16 or off")
        return torch.float16
    if mode != "auto":
        raise InputError(f"unknown amp mode {mode!r}: use auto, off, bf16 or fp16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


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
