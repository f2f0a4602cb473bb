"""The checkpoint format of a trained model, written atomically.

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

import errno
import os
from pathlib import Path
from typing import Any

import torch

from cryogen.errors import InputError, OutputError
from cryogen.io.space import free_bytes

__all__ = [
    "FORMAT",
    "LAST",
    "SNAPSHOT_DIR",
    "check_finite_weights",
    "find_checkpoint",
    "load_checkpoint",
    "nonfinite_weights",
    "save_checkpoint",
    "snapshot_path",
    "tensor_bytes",
]

FORMAT = "cryogen-checkpoint-1"
LAST = "last.pt"
SNAPSHOT_DIR = "checkpoints"

#: Room for what a checkpoint holds besides tensors (the zip's records, the config):
#: measured 32 kB on a tiny model and 70 kB on the cpu preset's 18 MB.
_MARGIN_BYTES = 64 * 1024


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/checkpoints/step_NNNNNN.pt``."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step:06d}.pt"


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested dict / list / tuple (a checkpoint's payload)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (``cryogen.io.atomic_output``).

    The free space of the folder's disk is checked first (the tensors' size plus a
    margin); a write that fails anyway (a disk filled meanwhile) is an ``OutputError``
    too.  Either way the previous file at ``path`` is kept.

    Raises
    ------
    OutputError
        The folder cannot be created, or its disk is full (device, need and have named).
    """
    from cryogen.io import atomic_output
    from cryogen.io.files import write_error

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p.parent}: cannot create the folder: {exc}") from None
    payload = {"format": FORMAT, **state}
    size = tensor_bytes(payload)
    size += _MARGIN_BYTES + size // 100
    with atomic_output(p, overwrite=True, size=size) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a failed write so
            if "write" not in str(exc).lower():
                raise
            err = OSError(errno.EIO, str(exc).splitlines()[0])
            if free_bytes(p.parent) < size:
                err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise write_error(p, err) from None
    return p


def nonfinite_weights(weights: dict[str, Any]) -> int:
    """How many values of a state dict's floating-point tensors are NaN or infinite."""
    if not isinstance(weights, dict):
        return 0
    return sum(
        int((~torch.isfinite(t)).sum())
        for t in weights.values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


def check_finite_weights(path: str | Path, weights: dict[str, Any], what: str = "weights") -> None:
    """Refuse weights holding NaN or Inf (a run that diverged): they could only predict NaN.

    Raises
    ------
    InputError
        Names the file and how many values are not finite.
    """
    bad = nonfinite_weights(weights)
    if bad:
        total = sum(t.numel() for t in weights.values() if isinstance(t, torch.Tensor))
        raise InputError(
            f"{path}: the {what} hold NaN or Inf ({bad} of {total} values): the run "
            "diverged before this checkpoint; use an earlier snapshot in checkpoints/"
        )


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
