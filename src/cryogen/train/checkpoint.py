"""Checkpoints of a training run, written atomically.

Layout of a run folder::

    RUN_DIR/config.json                   resolved TrainConfig
    RUN_DIR/last.pt                       full state (both models, optimisers, RNGs, ...)
    RUN_DIR/checkpoints/step_000500.pt    generator-only snapshots (enough for ``predict``)
    RUN_DIR/losses.csv, RUN_DIR/losses.png

Every file holds ``format``, ``kind`` (``"full"`` or ``"generator"``), ``config`` (a dict),
``method``, ``tilt_min``, ``tilt_max``, ``voxel_size``, ``normalisation``, ``crop_size``,
``step``, ``elapsed_s`` and ``generator`` (a state dict); full checkpoints add the energy
model, both optimisers, the grad scaler, the RNG states (torch, numpy, python, the data
sampler's and the noise generator's) and the IsoNet round state.  Files are written to a
temporary name and moved into place with ``os.replace``, so a crash never leaves a torn
checkpoint.  They load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.errors import InputError, OutputError

__all__ = [
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "snapshot_path",
    "find_checkpoint",
]

FORMAT = "cryogen-checkpoint-1"
LAST = "last.pt"
SNAPSHOT_DIR = "checkpoints"


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/checkpoints/step_NNNNNN.pt``."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step:06d}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temporary file, then ``os.replace``)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p.parent}: cannot create the folder: {exc}") from None
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        raise OutputError(f"{p}: cannot write the checkpoint: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    InputError
        Missing file, not a checkpoint, or a checkpoint of another format.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: checkpoint not found")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise InputError(f"{p}: not a readable CryoGEN checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        fmt = state.get("format") if isinstance(state, dict) else None
        raise InputError(f"{p}: not a CryoGEN checkpoint (format {fmt!r}, expected {FORMAT!r})")
    return state


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint a path names: a file as is; a run folder's ``last.pt``, else its newest
    snapshot."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        if (p / LAST).is_file():
            return p / LAST
        snaps = sorted((p / SNAPSHOT_DIR).glob("step_*.pt"))
        if snaps:
            return snaps[-1]
        raise InputError(f"{p}: no checkpoint in this folder (no {LAST}, no {SNAPSHOT_DIR}/)")
    raise InputError(f"{p}: no such checkpoint file or run folder")


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
