"""The checkpoint format: atomic round trip, format check, finding a run's checkpoint."""

import pytest
import torch

from cryogen.errors import InputError
from cryogen.model import (
    FORMAT,
    LAST,
    SNAPSHOT_DIR,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
    snapshot_path,
)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_in_a_new_folder(tmp_path):
    state = {
        "kind": "generator",
        "step": 7,
        "tilt_min": -54.0,
        "generator": {"w": torch.arange(6.0).reshape(2, 3)},
        "config": {"features": [4, 8]},
    }
    path = save_checkpoint(tmp_path / "run" / SNAPSHOT_DIR / "step_000007.pt", state)
    assert path == snapshot_path(tmp_path / "run", 7)
    assert listing(path.parent) == ["step_000007.pt"]  # no temporary file left
    back = load_checkpoint(path)
    assert back["format"] == FORMAT
    assert {k: v for k, v in back.items() if k != "generator"} == {
        "format": FORMAT,
        **{k: v for k, v in state.items() if k != "generator"},
    }
    assert torch.equal(back["generator"]["w"], state["generator"]["w"])
    save_checkpoint(path, {**state, "step": 8})  # replaced atomically
    assert load_checkpoint(path)["step"] == 8 and listing(path.parent) == ["step_000007.pt"]


def test_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a readable CryoGEN checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else", "w": torch.zeros(1)}, other)
    with pytest.raises(InputError, match="format 'something-else'"):
        load_checkpoint(other)
    plain = tmp_path / "plain.pt"
    torch.save(torch.zeros(2), plain)
    with pytest.raises(InputError, match="format None"):
        load_checkpoint(plain)


def test_find_checkpoint(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(InputError, match="no such checkpoint"):
        find_checkpoint(run)
    run.mkdir()
    with pytest.raises(InputError, match="no checkpoint in this folder"):
        find_checkpoint(run)
    for step in (20, 100, 3):
        save_checkpoint(snapshot_path(run, step), {"step": step})
    assert find_checkpoint(run) == snapshot_path(run, 100)  # the newest snapshot
    save_checkpoint(run / LAST, {"step": 100, "kind": "full"})
    assert find_checkpoint(run) == run / LAST  # the full state first
    assert find_checkpoint(snapshot_path(run, 3)) == snapshot_path(run, 3)  # a file as is
    assert snapshot_path("r", 12).as_posix() == "r/checkpoints/step_000012.pt"
