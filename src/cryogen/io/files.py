"""Output paths and atomic writes: nothing the package writes is ever left half written.

Every file is written under a hidden temporary name in its folder
(``.NAME.<pid>-<random>.tmp``) and renamed over the final name with ``os.replace`` once
complete; on any failure the temporary file is deleted and an existing output is left as it
was.  :func:`atomic_output` is that mechanism; :func:`write_text_atomic`, :func:`write_json`
and ``cryogen.figures.save_figure`` are built on it.  An existing output is refused unless
``overwrite=True``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from cryogen.errors import CryogenError, OutputError

__all__ = [
    "atomic_output",
    "check_output_path",
    "derived_path",
    "stem_of",
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


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Fail early if ``path`` cannot be written; call before long computations.

    Parameters
    ----------
    path
        The output file.
    overwrite
        Allow replacing an existing file.

    Returns
    -------
    Path
        ``path`` as a ``Path`` (not resolved).

    Raises
    ------
    OutputError
        The file exists and ``overwrite`` is false (``advice="overwrite"``),
        the path is a folder, or its folder does not exist, is not a folder, or is not
        writable (the message names the folder).
    """
    out = Path(path)
    if str(path) == "" or out.name == "":
        raise OutputError(f"{path!s}: not a file name")
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
    return out


def _temp_path(final: Path) -> Path:
    """A hidden temporary name beside ``final`` (same folder, so the rename is atomic)."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path to write, then rename it.

    On a clean exit the temporary file is renamed to ``path`` with ``os.replace``; on any
    exception it is deleted and ``path`` is left as it was.  ``OSError`` raised while
    writing becomes an ``OutputError`` naming the file and its folder.

    Examples
    --------
    >>> with atomic_output("scores.json", overwrite=True) as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    final = check_output_path(path, overwrite)
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
            reason = err.strerror or str(err)
            raise OutputError(
                f"cannot write {final} in the folder {final.parent}: {reason}"
            ) from err
        raise


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
