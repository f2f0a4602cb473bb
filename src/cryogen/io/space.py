"""Disk space: a full disk is a one-line error before writing, never a crash while writing.

Outputs written through a memory map (tomograms, scratch spectra) turn a full disk into
``SIGBUS``, which kills the process without a message and leaves its temporary file behind.
So every large output is checked against the free space of its folder before it is
created (:func:`check_free_space`), and its blocks are allocated up front
(:func:`reserve_space`, ``posix_fallocate``): a disk filled meanwhile by another writer
then fails at creation with a Python error, not later in the middle of the map.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from cryogen.errors import OutputError

__all__ = ["check_free_space", "disk_name", "format_bytes", "free_bytes", "reserve_space"]

#: errno values of ``posix_fallocate`` on file systems that cannot allocate ahead.
_NOT_SUPPORTED = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENOTSUP}


def format_bytes(n: float) -> str:
    """``921_600_000`` -> ``"922 MB"`` (decimal units, three significant digits)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _mounts() -> list[tuple[str, str]]:
    """``(mount point, source)`` of every mount of this process (Linux), else ``[]``."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 2:
            point = fields[4].replace("\\040", " ").replace("\\011", "\t")
            out.append((point, tail[1]))
    return out


def disk_name(folder: str | os.PathLike[str]) -> str:
    """The device that holds ``folder``, for messages: ``"/dev/vda (mounted at /)"``."""
    path = Path(folder).resolve()
    best = ("", "")
    for point, source in _mounts():
        inside = path == Path(point) or Path(point) in path.parents
        if inside and len(point) >= len(best[0]):
            best = (point, source)
    if best[0]:
        return f"{best[1]} (mounted at {best[0]})"
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return f"the disk mounted at {path}"


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system."""
    return int(shutil.disk_usage(folder).free)


def _no_space(folder: Path, name: object, need: int, have: int) -> OutputError:
    return OutputError(
        f"no space left on {disk_name(folder)} to write {name}: need {format_bytes(need)}, "
        f"have {format_bytes(have)}"
    )


def check_free_space(
    folder: str | os.PathLike[str], nbytes: int, name: object | None = None
) -> None:
    """Refuse to start writing ``nbytes`` into ``folder`` when its disk has less free space.

    Parameters
    ----------
    folder
        The folder the file goes to (it must exist).
    nbytes
        Size of what is about to be written.
    name
        How the message names the output (default: ``folder``).

    Raises
    ------
    OutputError
        ``"no space left on DEVICE to write NAME: need X GB, have Y GB"``.
    """
    folder = Path(folder)
    have = free_bytes(folder)
    if nbytes > have:
        raise _no_space(folder, name if name is not None else folder, int(nbytes), have)


def reserve_space(path: str | os.PathLike[str], nbytes: int, name: object | None = None) -> bool:
    """Allocate the blocks of the first ``nbytes`` of the file ``path`` now.

    A sparse file (what a new memory map is) gets its blocks only when its pages are
    written back; on a full disk that is a ``SIGBUS``.  After this call they exist, so the
    writes cannot fail for lack of space (on file systems that allocate in place: ext4,
    xfs, tmpfs...).

    Returns
    -------
    bool
        False where the file system cannot allocate ahead (the free-space check is then
        the only defence).

    Raises
    ------
    OutputError
        Not enough space (the message names the device, the size and the free space).
    """
    p = Path(path)
    shown = name if name is not None else p
    allocated = p.stat().st_blocks * 512 if p.exists() else 0
    check_free_space(p.parent, max(0, int(nbytes) - allocated), shown)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, int(nbytes))
    except OSError as exc:
        if exc.errno in _NOT_SUPPORTED:
            return False
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(p.parent, shown, int(nbytes), free_bytes(p.parent)) from None
        raise
    finally:
        os.close(fd)
    return True
