"""The run folder under faults: one training at a time, nothing left by a failed start, a
damaged losses.csv, a finished or NaN run resumed, a full disk at a checkpoint, SIGTERM;
and a run that explains itself (run.log, resolved config.json, losses.png)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import cryogen.io.space as space
from cryogen.device import amp_choice
from cryogen.errors import InputError, OutputError
from cryogen.model import load_checkpoint, load_model, save_checkpoint
from cryogen.train import LOSS_COLUMNS, Trainer, train
from cryogen.train.run_dir import read_loss_rows
from cryogen.train.run_lock import LOCK_FILE, lock_run_dir, unlock_run_dir
from cryogen.train.run_log import amp_name
from support import tiny_config

#: Another process holding a run folder's lock the way a training does (``flock`` on the
#: lock file, its pid written in it), without importing torch: it starts in milliseconds.
HOLD = textwrap.dedent(
    """
    import fcntl, os, socket, sys, time
    os.makedirs(sys.argv[1], exist_ok=True)
    fd = os.open(os.path.join(sys.argv[1], sys.argv[2]), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()} {socket.gethostname()} now\\n".encode())
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture()
def one_line_error():
    """``one_line_error(excinfo, *needles)``: the message is one line with the needles."""

    def check(excinfo, *needles):
        msg = str(excinfo.value)
        assert "\n" not in msg, msg
        for needle in needles:
            assert needle in msg, msg

    return check


def hold_lock(run_dir):
    """A process that holds the lock of ``run_dir`` until killed."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), LOCK_FILE], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


# ------------------------------------------------------------------------------ the lock
def test_a_second_process_is_refused_and_a_dead_ones_lock_is_stale(tmp_path, one_line_error):
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        with pytest.raises(OutputError) as e:
            lock_run_dir(run)
        one_line_error(e, "another training is using this run folder", f"pid {holder.pid}")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock_run_dir(run)  # the kernel dropped the dead process's lock
    assert (run / LOCK_FILE).exists()
    unlock_run_dir(run)
    assert not (run / LOCK_FILE).exists()  # a run that ends leaves no lock file


@pytest.mark.slow
def test_a_training_in_a_locked_folder_touches_nothing(tmp_path, volume, tiny):
    run = tmp_path / "run"
    train(tiny(steps=2), [volume], run, progress=False)
    files = lambda: {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != LOCK_FILE}  # noqa: E731
    before = files()
    holder = hold_lock(run)
    try:
        with pytest.raises(OutputError, match="another training"):
            train(tiny(steps=2), [volume], run, progress=False, overwrite=True)
        with pytest.raises(OutputError, match="another training"):
            train(tiny(steps=4), [volume], run, progress=False, resume=True)
    finally:
        holder.kill()
        holder.wait()
    assert files() == before


# ------------------------------------------------------------------------------ failed starts
def test_a_failed_start_leaves_no_run_folder(tmp_path, volume, tiny):
    bad = tiny(crop_size=32, subtomo_size=32)  # larger than the 28^3 volume
    with pytest.raises(InputError):
        train(bad, [volume], tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(InputError):
        train(bad, [volume], mine, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    train(tiny(steps=1), [volume], tmp_path / "new", progress=False)  # nothing in the way


def test_a_full_disk_at_a_checkpoint_keeps_the_run_resumable(
    tmp_path, volume, tiny, monkeypatch, run_files
):
    cfg = tiny(steps=4, checkpoint_every=2)
    train(cfg, [volume], tmp_path / "full", progress=False)
    saves = []

    def fill_after_two(folder):
        saves.append(folder)
        return 10**12 if len(saves) <= 2 else 10  # last.pt and snapshot at 2, not at 4

    monkeypatch.setattr(space, "free_bytes", fill_after_two)
    with pytest.raises(OutputError, match="no space left"):
        train(cfg, [volume], tmp_path / "part", progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == 2
    train(cfg, [volume], tmp_path / "part", progress=False, resume=True)
    assert run_files.loss_rows(tmp_path / "part") == run_files.loss_rows(tmp_path / "full")


# ------------------------------------------------------------------------------ resuming
DAMAGED = {
    "empty": "",  # a full disk when the file was started
    "torn": "step,elapsed_s,progress\n1,0.1,0.25\n2,0.2",  # an older header, a torn row
    "garbled": "\x00\x00garbage\n1,x,y\n2,3\n",  # no header, unreadable rows
}


def test_a_damaged_loss_log_keeps_its_readable_rows(tmp_path):
    log = tmp_path / "losses.csv"
    expected = {"empty": [], "torn": [["1", "0.1", "0.25"]], "garbled": []}
    for name, text in DAMAGED.items():
        log.write_text(text)
        header, rows, problems = read_loss_rows(log, step=5)
        assert header == list(LOSS_COLUMNS)
        assert rows == expected[name] and problems > 0, name
    log.write_text("step,elapsed_s\n1,0.5\n2,1.5\n3,2.5\n")
    assert read_loss_rows(log, step=2)[1:] == ([["1", "0.5"], ["2", "1.5"]], 0)


@pytest.mark.slow
def test_a_damaged_loss_log_does_not_stop_a_resume(tmp_path, volume, tiny, run_files, caplog):
    cfg = tiny(steps=4)
    train(cfg, [volume], tmp_path / "full", progress=False)
    stop = lambda info: info["step"] == 2  # noqa: E731
    train(cfg, [volume], tmp_path / "part", progress=False, callback=stop)
    for name, text in DAMAGED.items():
        part = tmp_path / name
        shutil.copytree(tmp_path / "part", part)
        (part / "losses.csv").write_text(text)
        train(cfg, [volume], part, progress=False, resume=True)
        assert "damaged" in caplog.text
        rows = run_files.loss_rows(part)
        assert rows[-2:] == run_files.loss_rows(tmp_path / "full")[-2:], name
        run_files.assert_same_state(
            run_files.weights(tmp_path / "full" / "last.pt"), run_files.weights(part / "last.pt")
        )


def test_resuming_a_finished_run_says_how_to_extend_it(tmp_path, volume, tiny, one_line_error):
    train(tiny(steps=1), [volume], tmp_path, progress=False)
    with pytest.raises(InputError) as e:
        train(tiny(steps=1), [volume], tmp_path, progress=False, resume=True)
    one_line_error(e, "the run is finished", "1 steps", "--steps 2")
    assert train(tiny(steps=2), [volume], tmp_path, progress=False, resume=True).step == 2


def test_non_finite_weights_are_refused_at_load(tmp_path, volume, tiny, one_line_error):
    train(tiny(steps=1), [volume], tmp_path, progress=False)
    last = tmp_path / "last.pt"
    state = load_checkpoint(last)
    name = next(iter(state["generator"]))
    state["generator"][name] = torch.full_like(state["generator"][name], float("nan"))
    save_checkpoint(last, state)
    with pytest.raises(InputError) as e:
        load_model(last, "cpu")
    one_line_error(e, "NaN or Inf", "diverged", "earlier snapshot")
    with pytest.raises(InputError, match="NaN or Inf"):
        Trainer(tiny(steps=2), [volume], tmp_path, resume=True)


# ------------------------------------------------------------------------------ explains itself
def test_run_log_config_and_figure(tmp_path, volume, tiny):
    run = tmp_path / "run"
    train(tiny(steps=3, amp="auto", device="auto"), [volume], run, progress=False,
          inputs=["TS_01.mrc  (28, 28, 28)  mask none"])  # fmt: skip
    log = (run / "run.log").read_text()
    # what 'auto' resolves to depends on the CPU: float32, or bf16 where it computes it natively
    dtype = amp_choice("auto", torch.device("cpu")).dtype
    precision = "float32" if dtype is None else "bfloat16 autocast"
    for needle in (
        "new run",
        "device: cpu",
        f"precision: {precision} (amp 'auto')",
        "threads: 1",
        "tilt range: [-60, 60] deg",
        "TS_01.mrc",
        "subtomograms: 3 of 24^3",
        "finished at step 3",
        "final losses",
    ):
        assert needle in log, needle
    config = json.loads((run / "config.json").read_text())
    assert (config["device"], config["amp"]) == ("cpu", amp_name(dtype))  # as resolved here
    assert (run / "losses.png").stat().st_size > 0
    train(tiny(steps=5, amp="auto", device="auto"), [volume], run, progress=False, resume=True)
    assert "resumed at step 3" in (run / "run.log").read_text()


# ------------------------------------------------------------------------------ SIGTERM
TRAIN = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import support
    from cryogen.train import train
    vol = np.random.default_rng(0).normal(size=(24, 24, 24)).astype(np.float32)
    cfg = support.tiny_config(steps=100000, subtomo_size=20, n_subtomos=2)
    train(cfg, [vol], sys.argv[1], progress=False,
          callback=lambda info: info["step"] == 3 and print("running", flush=True))
    """
)


@pytest.mark.slow
def test_sigterm_checkpoints_like_ctrl_c(tmp_path):
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, "-c", TRAIN.format(tests=tests), str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "running"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0
    step = load_checkpoint(run / "last.pt")["step"]
    assert step >= 3
    assert "stopped by SIGTERM" in (run / "run.log").read_text()
    lock_run_dir(run)  # released
    unlock_run_dir(run)
    train_again = tiny_config(steps=step + 1, subtomo_size=20, n_subtomos=2)
    volume = np.random.default_rng(0).normal(size=(24, 24, 24)).astype(np.float32)
    assert train(train_again, [volume], run, progress=False, resume=True).step == step + 1
