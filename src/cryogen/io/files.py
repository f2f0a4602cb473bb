"""Output paths and atomic writes: nothing the package writes is ever left half written.

Every file is written under a hidden temporary name in its folder
(``.NAME.<pid>-<random>.tmp``) and renamed over the final name with ``os.replace`` once
complete; on any failure the temporary file is deleted and an existing output is left as it
was.  :func:`atomic_output` is that mechanism; :func:`write_text_atomic`, :func:`write_json`
and ``cryogen.figures.save_figure`` are built on it.  An existing output is refused unless
``overwrite=True``; an output that is one of the command's inputs is refused always
(:func:`check_output_path` with ``inputs``).

The pid in the temporary name says who writes: a second process writing the same output
is refused before it starts (:func:`claim_output`), and temporary files whose process is
gone (a run killed by ``SIGKILL`` or a crash) are deleted when the output is written again;
:func:`orphaned_temp_files` lists them for a folder.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from cryogen.errors import CryogenError, OutputError
from cryogen.io.space import check_free_space, disk_name, format_bytes, free_bytes

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_output",
    "check_no_writer",
    "check_output_path",
    "claim_output",
    "derived_path",
    "orphaned_temp_files",
    "process_alive",
    "same_file",
    "stem_of",
    "write_error",
    "write_json",
    "write_text_atomic",
]


def stem_of(path: str | os.PathLike[str]) -> str:
    """The file name without its last suffix: ``TS_01.bin4.rec`` -> ``TS_01.bin4``."""
    return Path(path).stem


def derived_path(
    path: str | os.PathLike[str],
    suffix: str,
    ext: str = ".mrc",
    out_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The name of an output derived from an input file.

    ``derived_path("a/TS_01.bin4.rec", "_corrected")`` is ``a/TS_01.bin4_corrected.mrc``:
    only the last suffix of the input is replaced.

    Parameters
    ----------
    path
        The input file.
    suffix
        Appended to the stem (for example ``"_corrected"``).
    ext
        The new extension, with or without the dot (``""`` for none).
    out_dir
        Folder of the output; the input's folder when ``None``.
    """
    src = Path(path)
    if ext and not ext.startswith("."):
        ext = "." + ext
    folder = Path(out_dir) if out_dir is not None else src.parent
    return folder / f"{stem_of(src)}{suffix}{ext}"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name one file: the same resolved path (through symbolic
    links, ``..``) or the same inode (hard links, bind mounts)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.resolve() == pb.resolve():
            return True
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except (OSError, RuntimeError):  # a symlink loop, a vanished file
        return False


def check_output_path(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Fail early if ``path`` cannot be written; call before long computations.

    Parameters
    ----------
    path
        The output file.
    overwrite
        Allow replacing an existing file.
    inputs
        The files the command reads (``None`` entries are skipped): an output that is one
        of them (:func:`same_file`: by path, through links, or by inode) is refused
        whatever ``overwrite`` says, since writing it would destroy the input.

    Returns
    -------
    Path
        ``path`` as a ``Path`` (not resolved).

    Raises
    ------
    OutputError
        The file exists and ``overwrite`` is false (``advice="overwrite"``), it is one of
        the ``inputs``, another process is writing it now, the path is a folder, or its
        folder does not exist, is not a folder, or is not writable (the message names the
        folder).
    """
    out = Path(path)
    if str(path) == "" or out.name == "":
        raise OutputError(f"{path!s}: not a file name")
    for src in inputs:
        if src is not None and same_file(out, src):
            shown = "" if str(src) == str(out) else f" ({src})"
            raise OutputError(
                f"cannot write {out}: it is an input of this command{shown}; "
                "give another output name"
            )
    parent = out.parent
    if not parent.exists():
        raise OutputError(f"cannot write {out}: the output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: {parent} is a file, not a folder")
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a folder")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputError(f"{out} already exists", advice="overwrite")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: the output folder {parent} is not writable")
    check_no_writer(out)
    return out


# ------------------------------------------------------------------------------ temporary files
def _temp_path(final: Path) -> Path:
    """A hidden temporary name beside ``final`` (same folder, so the rename is atomic)."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _temp_files(final: Path) -> list[tuple[Path, int]]:
    """The temporary files of ``final`` in its folder (any process's), with their pid."""
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(\d+)-[0-9a-f]+\.tmp$")
    found = []
    with suppress(OSError):
        for entry in os.scandir(final.parent if str(final.parent) else "."):
            m = pattern.match(entry.name)
            if m:
                found.append((final.parent / entry.name, int(m.group(1))))
    return found


def process_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine and looks like a Python program
    (a temporary file whose pid was reused by, say, a shell counts as abandoned)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().lower()
    except OSError:
        return True  # no /proc: trust the pid
    # empty while a process starts (or ends): trust the pid
    return not cmd or b"python" in cmd or b"cryogen" in cmd or b"torchrun" in cmd


def check_no_writer(final: Path) -> None:
    """Refuse ``final`` while another live process writes it (its temporary file exists).

    Raises
    ------
    OutputError
        Names the other process and its temporary file.
    """
    for tmp, pid in _temp_files(final):
        if pid != os.getpid() and process_alive(pid):
            raise OutputError(
                f"cannot write {final}: another process (pid {pid}) is writing it now "
                f"({tmp.name}); wait for it, or delete that file if no such run is going on"
            )


def claim_output(final: Path) -> list[Path]:
    """Before writing ``final``: refuse if another live process is writing it now, and
    delete the temporary files that killed runs left behind (returns them).

    Raises
    ------
    OutputError
        Another process is writing ``final`` (its temporary file is named in the message).
    """
    check_no_writer(final)
    removed = []
    for tmp, pid in _temp_files(final):
        if pid == os.getpid() or process_alive(pid):
            continue
        size = 0
        with suppress(OSError):
            size = tmp.stat().st_blocks * 512
            tmp.unlink()
            removed.append(tmp)
            logger.warning(
                "removed %s (%s), left by an interrupted run (pid %d)",
                tmp,
                format_bytes(size),
                pid,
            )
    _report_orphans(final.parent)
    return removed


_REPORTED: set[Path] = set()


def _report_orphans(folder: Path) -> None:
    """Warn once per folder about temporary files that killed runs left for other outputs
    (they are deleted when those outputs are written again)."""
    key = folder.resolve()
    if key in _REPORTED:
        return
    _REPORTED.add(key)
    left = orphaned_temp_files(folder)
    if left:
        size = sum(p.stat().st_blocks * 512 for p in left if p.exists())
        logger.warning(
            "%s holds %d temporary file(s) of interrupted runs (%s): %s; delete them, or "
            "write those outputs again",
            folder,
            len(left),
            format_bytes(size),
            ", ".join(p.name for p in left[:3]) + (" ..." if len(left) > 3 else ""),
        )


def orphaned_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The temporary files in ``folder`` whose writing process is gone (killed runs)."""
    pattern = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")
    found = []
    with suppress(OSError):
        for entry in os.scandir(folder):
            m = pattern.match(entry.name)
            if m and not process_alive(int(m.group(1))):
                found.append(Path(folder) / entry.name)
    return sorted(found)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], overwrite: bool = False, *, size: int | None = None
) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path to write, then rename it.

    On a clean exit the temporary file is renamed to ``path`` with ``os.replace``; on any
    exception (``SystemExit`` and ``KeyboardInterrupt`` included) it is deleted and
    ``path`` is left as it was.  ``OSError`` raised while writing becomes an
    ``OutputError`` naming the file and its folder.  Before the temporary file is made,
    another live process writing ``path`` is refused and temporary files of ``path`` left
    by killed runs are deleted (:func:`claim_output`).

    Parameters
    ----------
    path
        The final file.
    overwrite
        Allow replacing an existing ``path``.
    size
        Bytes about to be written, when known: refused up front when the disk has less
        free space (:func:`cryogen.io.space.check_free_space`).

    Examples
    --------
    >>> with atomic_output("scores.json", overwrite=True) as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    final = check_output_path(path, overwrite)
    claim_output(final)
    if size is not None:
        check_free_space(final.parent, size, final)
    tmp = _temp_path(final)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"cannot write {final}: nothing was written")
        if not overwrite and (final.exists() or final.is_symlink()):
            raise OutputError(f"{final} already exists", advice="overwrite")
        os.replace(tmp, final)
    except BaseException as err:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, CryogenError):
            raise write_error(final, err) from err
        raise


def write_error(final: Path, err: OSError) -> OutputError:
    """An ``OSError`` met while writing ``final`` as a one-line ``OutputError`` (a full
    disk names the device and its free space)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        with suppress(OSError):
            return OutputError(
                f"no space left on {disk_name(final.parent)} to write {final} "
                f"(have {format_bytes(free_bytes(final.parent))})"
            )
    reason = err.strerror or str(err)
    return OutputError(f"cannot write {final} in the folder {final.parent}: {reason}")


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path`` as a ``Path``."""
    final = Path(path)
    with atomic_output(final, overwrite) as tmp:
        tmp.write_text(text)
    return final


def _json_ready(obj: Any, nonfinite: Literal["string", "null"]) -> Any:
    """``obj`` with tuples as lists, numpy/torch scalars as numbers, and non-finite floats
    as strings (``"nan"``, ``"inf"``) or ``None``."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v, nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v, nonfinite) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj) if nonfinite == "string" else None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    overwrite: bool = True,
    nonfinite: Literal["string", "null"] = "null",
) -> Path:
    """Write ``obj`` as indented JSON atomically.

    Parameters
    ----------
    path
        The output file.
    obj
        Nested dicts, lists and scalars (numpy and torch scalars are converted; anything
        else is written as its ``str``).
    overwrite
        Allow replacing an existing file.
    nonfinite
        How NaN and infinities are written: ``"null"`` (readable by every JSON parser) or
        ``"string"`` (``"nan"``, ``"inf"``: the value stays visible to a reader).
    """
    text = json.dumps(_json_ready(obj, nonfinite), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text, overwrite=overwrite)
