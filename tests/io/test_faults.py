"""Outputs under faults: a full disk, an output that is an input, a second writer, files
left by killed runs, NaN results.  Nothing is lost and nothing half-written is left."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import cryogen.io.space as space
from cryogen.errors import OutputError
from cryogen.io import check_output_path, write_volume
from cryogen.io.files import claim_output, orphaned_temp_files, same_file
from cryogen.io.space import check_free_space, disk_name, format_bytes, reserve_space
from cryogen.model import save_checkpoint


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def dead_pid():
    """A pid that no process has (a finished child's)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture()
def full_disk(monkeypatch):
    """The free-space query answers ``free`` bytes (default 1000)."""

    def make(free=1000):
        monkeypatch.setattr(space, "free_bytes", lambda folder: free)

    return make


# ------------------------------------------------------------------------------ free space
def test_format_bytes_and_disk_name(tmp_path):
    assert format_bytes(921_600_000) == "922 MB"
    assert format_bytes(2.5e9) == "2.5 GB"
    assert format_bytes(12) == "12 B"
    name = disk_name(tmp_path)
    assert "mounted at" in name
    check_free_space(tmp_path, 1)  # a byte fits anywhere


def test_the_free_space_check_names_device_need_and_have(tmp_path, full_disk, one_line_error):
    full_disk(free=2_000_000)
    with pytest.raises(OutputError) as e:
        check_free_space(tmp_path, 8_400_000, "out.mrc")
    one_line_error(e, "no space left on", "mounted at", "out.mrc", "need 8.4 MB", "have 2 MB")


def test_a_full_disk_refuses_a_volume_before_writing(tmp_path, full_disk, one_line_error):
    old = tmp_path / "out.mrc"
    write_volume(old, np.ones((4, 4, 4), np.float32), voxel_size=1.0)
    before = old.read_bytes()
    full_disk(free=1000)
    with pytest.raises(OutputError) as e:
        write_volume(old, np.zeros((16, 16, 16), np.float32), voxel_size=1.0, overwrite=True)
    one_line_error(e, "no space left", "need 17.4 kB", "have 1 kB")
    assert listing(tmp_path) == ["out.mrc"]  # no temporary file
    assert old.read_bytes() == before  # the old output untouched


def test_a_full_disk_at_checkpoint_keeps_the_previous_one(tmp_path, full_disk, one_line_error):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.ones(8)})
    before = path.read_bytes()
    full_disk(free=10)
    with pytest.raises(OutputError) as e:
        save_checkpoint(path, {"w": torch.zeros(1000)})
    one_line_error(e, "no space left", "last.pt")
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["last.pt"]


def test_a_failed_torch_save_is_one_line(tmp_path, monkeypatch, full_disk, one_line_error):
    """A disk filled by another writer after the check: torch's zip writer raises a
    RuntimeError, which becomes the same one-line error."""

    def failing(obj, f):
        Path(f).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:123] . file write failed")

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(OutputError) as e:
        save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(8)})
    one_line_error(e, "last.pt")
    assert listing(tmp_path) == []


def test_reserve_space_allocates_blocks(tmp_path):
    f = tmp_path / "sparse"
    with f.open("wb") as fh:
        fh.truncate(1 << 20)
    assert f.stat().st_blocks * 512 < (1 << 20)
    if reserve_space(f, 1 << 20):
        assert f.stat().st_blocks * 512 >= (1 << 20)


# ------------------------------------------------------------------------------ a real full disk
def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0:
        return False
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only; skipped where mounting is not possible)."""
    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, "1M"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("skip_check", [False, True])
def test_a_real_full_disk_is_an_error_not_a_bus_error(tiny_disk, skip_check):
    """In a subprocess (a SIGBUS would kill pytest): a 4 MB volume on a 1 MiB disk, with
    the free-space check (refused up front) and without it (the allocation refuses)."""
    code = textwrap.dedent(
        f"""
        import numpy as np
        import cryogen.io.space as space
        from cryogen.io import write_volume
        if {skip_check}:
            space.free_bytes = lambda folder: 10**15
        write_volume({str(tiny_disk / "out.mrc")!r}, np.ones((16, 256, 256), np.float32),
                     voxel_size=1.0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, (done.returncode, done.stderr)  # not 135 (SIGBUS)
    assert "OutputError: no space left on tmpfs" in done.stderr
    assert listing(tiny_disk) == []


# ------------------------------------------------------------------------------ output = input
def test_an_output_that_is_an_input_is_refused_whatever_the_flags(tmp_path, one_line_error):
    src = tmp_path / "tomo.mrc"
    write_volume(src, np.ones((4, 4, 4), np.float32), voxel_size=1.0)
    link = tmp_path / "link.mrc"
    link.symlink_to(src)
    hard = tmp_path / "hard.mrc"
    os.link(src, hard)
    sub = tmp_path / "sub"
    sub.mkdir()
    for out in (src, link, hard, sub / ".." / "tomo.mrc"):
        assert same_file(out, src)
        with pytest.raises(OutputError) as e:
            check_output_path(out, overwrite=True, inputs=[None, src])
        one_line_error(e, "is an input")
    assert not same_file(tmp_path / "other.mrc", src)
    check_output_path(tmp_path / "other.mrc", inputs=[src])


# ------------------------------------------------------------------------------ other writers
def test_temporary_files_of_killed_runs_are_removed(tmp_path, caplog):
    out = tmp_path / "out.mrc"
    orphan = tmp_path / f".out.mrc.{dead_pid()}-0123abcd.tmp"
    orphan.write_bytes(b"x" * 5000)
    other = tmp_path / f".else.mrc.{dead_pid()}-0123abcd.tmp"
    other.write_bytes(b"y")
    assert orphaned_temp_files(tmp_path) == sorted([other, orphan])
    write_volume(out, np.ones((4, 4, 4), np.float32), voxel_size=1.0)
    assert not orphan.exists()  # this output's: removed
    assert other.exists()  # another output's: reported
    assert "left by an interrupted run" in caplog.text
    assert "temporary file(s) of interrupted runs" in caplog.text


def test_a_second_writer_is_refused_before_it_starts(tmp_path, one_line_error):
    out = tmp_path / "out.mrc"
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".out.mrc.{writer.pid}-0123abcd.tmp"
        busy.write_bytes(b"")
        with pytest.raises(OutputError) as e:
            check_output_path(out, overwrite=True)
        one_line_error(e, f"another process (pid {writer.pid}) is writing it")
        with pytest.raises(OutputError):
            claim_output(out)
        assert busy.exists()
    finally:
        writer.kill()
        writer.wait()
    assert claim_output(out) == [busy]  # its process gone: an orphan


# ------------------------------------------------------------------------------ NaN results
def test_a_nan_result_is_not_written(tmp_path, one_line_error):
    data = np.ones((4, 4, 4), np.float32)
    data[1, 2, 3] = np.nan
    with pytest.raises(OutputError) as e:
        write_volume(tmp_path / "out.mrc", data, voxel_size=1.0)
    one_line_error(e, "NaN or Inf in 1 of 64 voxels")
    assert listing(tmp_path) == []
    write_volume(tmp_path / "out.mrc", data, voxel_size=1.0, allow_nonfinite=True)
    assert listing(tmp_path) == ["out.mrc"]
