"""One training per run folder: a lock on the folder, and no empty folder left by a failure.

A run takes an exclusive ``flock`` on ``RUN_DIR/.cryogen.lock`` before it touches anything
there (before ``overwrite`` deletes an old run, before ``resume`` reads ``last.pt``), and
keeps it until it ends, then removes the file.  A second training or resume of the same
folder is refused with the holder's pid, host and start time.  The kernel drops the lock
when its process dies, so the lock of a killed run is never in the way (its file stays,
unlocked, and the next run takes it).  Where the file
system has no ``flock`` (some network file systems), the pid written in the file decides:
a live process on this host holds the folder, anything else is stale.

A run that fails before its first checkpoint (bad data, a full disk, ``SIGTERM`` during
setup) removes what it wrote, and the folder if it created it: nothing then stands in the
way of running the same command again.  Under ``torchrun`` only rank 0 locks and writes.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from cryogen.errors import OutputError
from cryogen.io.files import process_alive
from cryogen.model import LAST, SNAPSHOT_DIR

__all__ = ["LOCK_FILE", "lock_run_dir", "locked_by_this_process", "unlock_run_dir"]

logger = logging.getLogger(__name__)

#: The lock file in the run folder (hidden; removed when the run ends).
LOCK_FILE = ".cryogen.lock"


@dataclass
class _Held:
    fd: int
    created: bool
    before: dict[str, int]  # the folder's files when it was locked: name -> inode
    thread: int = field(default_factory=threading.get_ident)


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


def _holder(path: Path) -> tuple[int, str, str]:
    """``(pid, host, started)`` written in a lock file (``(0, "", "")`` if unreadable)."""
    try:
        pid, host, started = path.read_text().split("\n")[0].split(" ", 2)
        return int(pid), host, started
    except (OSError, ValueError):
        return 0, "", ""


def _busy(run_dir: Path, path: Path) -> OutputError:
    pid, host, started = _holder(path)
    who = f" (pid {pid} on {host}, started {started})" if pid else ""
    return OutputError(
        f"{run_dir}: another training is using this run folder{who}; wait for it to end, "
        "or give another output folder"
    )


def lock_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Create ``run_dir`` if needed and lock it for this process (a no-op if it holds it).

    Raises
    ------
    OutputError
        Another live process holds the folder, or it cannot be created.
    """
    run = Path(run_dir)
    key = run.resolve()
    with _GUARD:
        if key in _HELD:
            return
        created = not run.exists()
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{run}: cannot create the run folder: {exc.strerror}") from None
        before = _inodes(run)
        fd = _open_and_take(run)
        # a thread trains one run at a time: folders it locked for runs that never ran (a
        # Trainer built and dropped) are released
        me = threading.get_ident()
        for other in [k for k, h in _HELD.items() if h.thread == me]:
            os.close(_HELD.pop(other).fd)
        _HELD[key] = _Held(fd, created, before)


def _open_and_take(run: Path) -> int:
    """Open and lock ``run``'s lock file; its descriptor."""
    path = run / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{run}: cannot write in the run folder: {exc.strerror}") from None
        try:
            _take(fd, run, path)
        except BaseException:
            os.close(fd)  # the folder and its lock file are the holder's
            raise
        if not _replaced(fd, path):
            return fd
        os.close(fd)  # the holder ended and removed the file between open and lock: again


def _replaced(fd: int, path: Path) -> bool:
    """True if ``path`` no longer names the file open as ``fd`` (removed or recreated)."""
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except OSError:
        return True


def _inodes(folder: Path) -> dict[str, int]:
    with suppress(OSError):
        return {e.name: e.inode() for e in os.scandir(folder)}
    return {}


def _take(fd: int, run: Path, path: Path) -> None:
    """Lock ``fd`` (or, without ``flock``, check the pid in it) and write who holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(run, path) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        pid, host, _ = _holder(path)
        if pid and pid != os.getpid() and host == socket.gethostname() and process_alive(pid):
            raise _busy(run, path) from None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with suppress(OSError):  # who holds it is for messages only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {stamp}\n".encode(), 0)


def locked_by_this_process(run_dir: str | os.PathLike[str]) -> bool:
    """True while this process holds the lock of ``run_dir``."""
    return Path(run_dir).resolve() in _HELD


def unlock_run_dir(
    run_dir: str | os.PathLike[str], *, failed: bool = False, remove: Iterable[str] = ()
) -> None:
    """Release the lock of ``run_dir`` (a no-op if this process does not hold it).

    With ``failed`` and no checkpoint in the folder, the files named in ``remove`` that
    this run wrote (absent, or another file, when it locked the folder) are deleted, and
    the folder too if this run created it and it is then empty.
    """
    key = Path(run_dir).resolve()
    with _GUARD:
        held = _HELD.pop(key, None)
    if held is None:
        return
    run = Path(run_dir)
    clean = failed and not (run / LAST).exists() and not (run / SNAPSHOT_DIR).exists()
    if clean:
        now = _inodes(run)
        for name in remove:
            if name in now and held.before.get(name) != now[name]:
                with suppress(OSError):
                    (run / name).unlink()
    with suppress(OSError):  # removed while still locked: no one can take a stale file
        (run / LOCK_FILE).unlink()
    os.close(held.fd)  # releases the flock
    if clean and held.created:
        with suppress(OSError):
            run.rmdir()  # only if empty: never a user's files
