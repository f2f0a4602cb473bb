"""Device and precision choice for training: explicit devices, and ``amp="auto"``
picking bf16 only where the CPU has fast bf16 kernels."""

import io
import logging

import pytest
import torch

from cryogen.errors import InputError


def test_device_choice():
    from cryogen.device import pick_device, resolve_amp

    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(InputError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            pick_device("cuda")
    assert resolve_amp("off", torch.device("cpu")) is None
    assert resolve_amp("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="fp16 autocast is not supported on the CPU"):
        resolve_amp("fp16", torch.device("cpu"))


@pytest.mark.parametrize(
    ("capability", "fast"), [("AVX2", False), ("DEFAULT", False), ("AVX512", True), ("AMX", True)]
)
def test_auto_precision_uses_bf16_only_where_the_cpu_makes_it_fast(
    monkeypatch, caplog, capability, fast
):
    """bf16 convolutions run on reference kernels below AVX-512 (measured 14x slower than
    float32 on an AVX2 EPYC): ``auto`` must then pick float32, and ``bf16`` must warn."""
    import cryogen.device as device_mod

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(
        device_mod, "open", lambda *a, **k: io.StringIO("flags: avx2 fma"), raising=False
    )
    device_mod.cpu_flags.cache_clear()
    # AVX-512 without native bf16: the timed probe decides (here: as if bf16 were faster)
    monkeypatch.setattr(device_mod, "bf16_speedup", lambda: 2.0)
    assert device_mod.cpu_has_fast_bf16() is fast
    assert device_mod.resolve_amp("auto", cpu) == (torch.bfloat16 if fast else None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cryogen.device"):
        assert device_mod.resolve_amp("bf16", cpu) == torch.bfloat16
    assert ("slow reference kernels" in caplog.text) is not fast
    # native bf16 flags count even when torch reports a lower capability
    monkeypatch.setattr(
        device_mod, "open", lambda *a, **k: io.StringIO("flags: avx512_bf16"), raising=False
    )
    device_mod.cpu_flags.cache_clear()
    assert device_mod.cpu_has_fast_bf16()
    device_mod.cpu_flags.cache_clear()
