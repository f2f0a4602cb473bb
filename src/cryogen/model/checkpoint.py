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

from pathlib import Path
from typing import Any

import torch

from cryogen.errors import InputError, OutputError

__all__ = [
    "FORMAT",
    "LAST",
    "SNAPSHOT_DIR",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "snapshot_path",
]

FORMAT = "cryogen-checkpoint-1"
LAST = "last.pt"
SNAPSHOT_DIR = "checkpoints"


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/checkpoints/step_NNNNNN.pt``."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step:06d}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (``cryogen.io.atomic_output``)."""
    from cryogen.io import atomic_output

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p.parent}: cannot create the folder: {exc}") from None
    with atomic_output(p, overwrite=True) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
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
