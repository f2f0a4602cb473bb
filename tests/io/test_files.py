"""Output files: atomic writes, output checks, JSON and text written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cryogen.errors import OutputError
from cryogen.io import (
    atomic_output,
    check_output_path,
    write_json,
    write_star,
    write_text_atomic,
    write_tlt,
    write_volume,
)


def rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_output_for_any_file(tmp_path):
    with atomic_output(tmp_path / "scores.json") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("{}")
    assert listing(tmp_path) == ["scores.json"]
    with pytest.raises(ZeroDivisionError):
        with atomic_output(tmp_path / "other.json") as tmp:
            tmp.write_text("half")
            1 / 0  # noqa: B018
    assert listing(tmp_path) == ["scores.json"]


def test_unwritable_output_folder(tmp_path, one_line_error):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as e:
        write_volume(blocker / "out.mrc", rand((4, 4, 4)), voxel_size=1.0)
    one_line_error(e, str(blocker), "not a folder")
    missing = tmp_path / "no" / "such"
    with pytest.raises(OutputError) as e:
        write_volume(missing / "out.mrc", rand((4, 4, 4)), voxel_size=1.0)
    one_line_error(e, str(missing), "does not exist")
    with pytest.raises(OutputError, match="folder"):
        check_output_path(tmp_path, True)  # a folder is not a file name
    for bad in (blocker / "a.tlt", missing / "a.star"):
        with pytest.raises(OutputError):
            write_tlt(bad, [0.0]) if bad.suffix == ".tlt" else write_star(bad, pd.DataFrame())
    assert listing(tmp_path) == ["file"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_folder(tmp_path, one_line_error):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError) as e:
            write_volume(ro / "out.mrc", rand((4, 4, 4)), voxel_size=1.0)
        one_line_error(e, str(ro), "not writable")
        assert listing(ro) == []
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------------------ JSON and text
SCORES = {
    "psnr": np.float32(21.5),
    "steps": np.int64(3),
    "ok": np.bool_(True),
    "loss": torch.tensor(0.25),
    "shape": (2, 3),
    "nested": {1: [math.nan, math.inf, -math.inf]},
    "none": None,
    "path": Path("a/b.mrc"),
}


def test_write_json_nonfinite_as_null_numpy_and_torch_scalars(tmp_path):
    out = write_json(tmp_path / "scores.json", SCORES)
    assert out == tmp_path / "scores.json"
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json.loads(text) == {
        "psnr": 21.5,
        "steps": 3,
        "ok": True,
        "loss": 0.25,
        "shape": [2, 3],
        "nested": {"1": [None, None, None]},
        "none": None,
        "path": str(Path("a/b.mrc")),
    }
    assert listing(tmp_path) == ["scores.json"]


def test_write_json_nonfinite_as_string(tmp_path):
    values = {"a": [np.float64("nan"), math.inf, -math.inf, 1.5]}
    out = write_json(tmp_path / "s.json", values, nonfinite="string")
    assert json.loads(out.read_text()) == {"a": ["nan", "inf", "-inf", 1.5]}


def test_write_json_refuses_an_existing_file_without_overwrite(tmp_path):
    path = write_json(tmp_path / "s.json", {"a": 1})
    with pytest.raises(OutputError, match="already exists") as e:
        write_json(path, {"a": 2}, overwrite=False)
    assert e.value.advice == "overwrite"
    assert json.loads(path.read_text()) == {"a": 1}
    write_json(path, {"a": 3})  # overwrite is the default
    assert json.loads(path.read_text()) == {"a": 3}
    assert listing(tmp_path) == ["s.json"]


class Unprintable:
    def __str__(self):
        raise RuntimeError("cannot be written")


def half_write(self, text, *args, **kwargs):
    """Path.write_text that writes half the text and then fails, like a full disk."""
    with open(self, "w") as f:
        f.write(text[: len(text) // 2])
    raise OSError(28, "No space left on device")


def test_a_failed_json_write_leaves_no_file_and_the_old_file_intact(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="cannot be written"):
        write_json(tmp_path / "new.json", {"x": Unprintable()})
    assert listing(tmp_path) == []
    old = write_json(tmp_path / "old.json", {"a": 1})
    before = old.read_bytes()
    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OutputError, match="no space left on") as e:
        write_json(old, {"a": list(range(100))})
    assert str(old) in str(e.value)
    with pytest.raises(OutputError):
        write_json(tmp_path / "new.json", {"a": 2})
    monkeypatch.undo()
    assert listing(tmp_path) == ["old.json"] and old.read_bytes() == before


def test_write_text_atomic(tmp_path, monkeypatch):
    out = write_text_atomic(tmp_path / "report.md", "# one\n")
    assert out == tmp_path / "report.md" and out.read_text() == "# one\n"
    write_text_atomic(out, "# two\n")  # overwrite is the default
    assert out.read_text() == "# two\n"
    with pytest.raises(OutputError, match="already exists"):
        write_text_atomic(out, "# three\n", overwrite=False)
    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OutputError):
        write_text_atomic(out, "# four, longer\n")
    monkeypatch.undo()
    assert out.read_text() == "# two\n" and listing(tmp_path) == ["report.md"]
    with pytest.raises(OutputError, match="does not exist"):
        write_text_atomic(tmp_path / "missing" / "a.txt", "x")
