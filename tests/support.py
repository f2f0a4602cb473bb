"""Helpers shared by the test modules (imported as ``support``; ``tests/`` is on the path).

Fixtures live in ``conftest.py``; plain functions and constants that several test modules
use live here, once.
"""

from __future__ import annotations

import json
from typing import Any

import mrcfile
import numpy as np
from typer.testing import CliRunner

#: Tiny networks, full precision, one thread: a few training steps take a second and are
#: deterministic.  Every training test starts from these.
TINY_TRAIN: dict[str, Any] = dict(
    method="cryogen",
    features=(4, 8),
    energy_features=(4, 4),
    energy_fc_features=(8,),
    subtomo_size=20,
    crop_size=16,
    n_subtomos=2,
    amp="off",
    threads=1,
    device="cpu",
    minutes=None,
    steps=1,
)

#: The networks of ``TINY_TRAIN`` as ``--set KEY=VALUE`` flags, for commands whose data
#: sizes are their own (``cryogen benchmark``, ``cryogen demo``).
TINY_NETWORK_SETTINGS: dict[str, Any] = {
    "amp": "off",
    "features": [4, 8],
    "energy_features": [4, 4],
    "energy_fc_features": [8],
    "adv_start": 0.0,
}


def tiny_config(**overrides: Any) -> Any:
    """A validated ``TrainConfig``: the cpu preset, ``TINY_TRAIN``, then ``overrides``."""
    from cryogen.train import TrainConfig

    return TrainConfig.from_sources("cpu", overrides={**TINY_TRAIN, **overrides})


def set_flags(settings: dict[str, Any]) -> list[str]:
    """``{"amp": "off"}`` -> ``["--set", "amp=\\"off\\""]``."""
    return [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v)}")]


_runner = CliRunner()


def run_cli(*args: Any) -> Any:
    """Run ``cryogen ARGS...`` in-process; returns click's ``Result``."""
    from cryogen.cli import app

    return _runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Any, *needles: str) -> None:
    """A failed command that printed no traceback and mentions every needle."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


def write_mrc(path: Any, data: Any, voxel_size: float = 2.5, origin: Any = None) -> Any:
    """Write ``data`` as float32 MRC with a voxel size (and origin ``(x, y, z)`` in Å)."""
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel_size
        if origin is not None:
            m.header.origin.x, m.header.origin.y, m.header.origin.z = origin
    return path


def read_mrc(path: Any) -> np.ndarray:
    """An MRC file's data as a float32 array in memory."""
    with mrcfile.open(path, permissive=True) as m:
        return np.array(m.data, dtype=np.float32)
