"""Random states of a training run: the global RNGs and the run's named streams, in a form
that ``torch.load(weights_only=True)`` reads back (plain Python types and tensors only)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


def _np_state_to_plain(state: dict) -> dict:
    """numpy bit-generator state with only plain Python types (weights_only loadable)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return {"__ndarray__": v.tolist(), "dtype": str(v.dtype)}
        if isinstance(v, np.integer):
            return int(v)
        return v

    return clean(state)


def _np_state_from_plain(state: dict) -> dict:
    def restore(v: Any) -> Any:
        if isinstance(v, dict):
            if "__ndarray__" in v:
                return np.array(v["__ndarray__"], dtype=v["dtype"])
            return {k: restore(x) for k, x in v.items()}
        return v

    return restore(state)


def capture_rng_state(
    extra_numpy: dict[str, np.random.Generator] | None = None,
    extra_torch: dict[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Global torch (CPU and CUDA), numpy and python RNG states, plus named generators."""
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _np_state_to_plain(_legacy_numpy_state()),
        "python": [py[0], list(py[1]), py[2]],
        "named_numpy": {
            k: _np_state_to_plain(g.bit_generator.state) for k, g in (extra_numpy or {}).items()
        },
        "named_torch": {k: g.get_state() for k, g in (extra_torch or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _legacy_numpy_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    return {
        "name": name,
        "keys": keys,
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def restore_rng_state(
    state: dict[str, Any],
    extra_numpy: dict[str, np.random.Generator] | None = None,
    extra_torch: dict[str, torch.Generator] | None = None,
) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    legacy = _np_state_from_plain(state["numpy"])
    legacy_tuple = (
        legacy["name"],
        legacy["keys"],
        legacy["pos"],
        legacy["has_gauss"],
        legacy["cached"],
    )
    np.random.set_state(legacy_tuple)  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    for k, g in (extra_numpy or {}).items():
        g.bit_generator.state = _np_state_from_plain(state["named_numpy"][k])
    for k, g in (extra_torch or {}).items():
        g.set_state(state["named_torch"][k].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
