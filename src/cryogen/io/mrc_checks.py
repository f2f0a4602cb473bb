"""Opening an MRC file and checking what it holds, one line per problem naming the file.

:func:`open_mrc_data` reads the data (memory-mapped or in memory) and tells why a file is
unreadable (empty, short, truncated, not MRC); a header that ``mrcfile`` rejects is retried
in permissive mode only for a known MRC extension and only when the header's mode and sizes
fit the file.  :func:`check_volume_shape` and :func:`check_volume_values` reject what cannot
be restored.  Every pass over the data walks :func:`chunks` of about :data:`CHUNK_ELEMENTS`
voxels, so a large memory-mapped volume is never copied whole.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from cryogen.errors import InputError

__all__ = [
    "CHUNK_ELEMENTS",
    "HEADER_BYTES",
    "MRC_EXTENSIONS",
    "HeaderInfo",
    "check_volume_shape",
    "check_volume_values",
    "chunks",
    "describe_unreadable",
    "inspect_header",
    "open_mrc_data",
    "plausible_header",
]

#: Extensions under which MRC files are commonly stored (tomograms, tilt stacks, maps).
#: Other extensions are read too when the header is a valid MRC header.
MRC_EXTENSIONS: tuple[str, ...] = (".mrc", ".rec", ".st", ".ali", ".map", ".mrcs")

#: Size of the MRC header in bytes (without extended header).
HEADER_BYTES = 1024

#: Voxels per chunk (4 Mi) of the memory-bounded passes (checks, header statistics, copies).
#: Read at every call of :func:`chunks`, so tests may lower it to exercise many chunks.
CHUNK_ELEMENTS = 1 << 22


def chunks(shape: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    """Slices along the first axis, each about :data:`CHUNK_ELEMENTS` voxels."""
    if len(shape) == 0:
        yield ()
        return
    per_slice = max(1, math.prod(int(s) for s in shape[1:]))
    step = max(1, CHUNK_ELEMENTS // per_slice)
    for start in range(0, int(shape[0]), step):
        yield (slice(start, min(start + step, int(shape[0]))),)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass
class HeaderInfo:
    """What an MRC header claims, read permissively.

    Attributes
    ----------
    map_ok
        The map ID is ``MAP``.
    dtype
        Data type of the header's mode (``None`` for an unknown mode).
    shape
        Data shape the header describes.
    expected_bytes
        File size the header implies (``None`` when it cannot say).
    file_bytes
        Actual file size.
    """

    map_ok: bool
    dtype: np.dtype | None
    shape: tuple[int, ...]
    expected_bytes: int | None
    file_bytes: int


def inspect_header(path: Path) -> HeaderInfo | None:
    """The header's claims (permissive, header only); ``None`` if there is no header."""
    size = path.stat().st_size
    if size < HEADER_BYTES:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=True) as m:
                h = m.header
                map_ok = bytes(h.map)[:3] == b"MAP"
                shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(h))
                try:
                    dtype: np.dtype | None = mrcfile.utils.data_dtype_from_header(h)
                except ValueError:
                    dtype = None
                nsymbt = int(h.nsymbt)
    except Exception:  # noqa: BLE001 - an unreadable header is "not MRC"
        return None
    expected = None
    if dtype is not None and all(n >= 0 for n in shape) and nsymbt >= 0:
        expected = HEADER_BYTES + nsymbt + dtype.itemsize * math.prod(shape)
    return HeaderInfo(map_ok, dtype, shape, expected, size)


def plausible_header(info: HeaderInfo | None) -> bool:
    """A header worth a permissive read: known mode, sizes that fit in the file."""
    return (
        info is not None
        and info.expected_bytes is not None
        and all(n > 0 for n in info.shape)
        and info.expected_bytes <= info.file_bytes
    )


def describe_unreadable(path: Path, err: Exception, info: HeaderInfo | None) -> str:
    """Why mrcfile could not read ``path``, in words (empty, short, truncated, not MRC).

    ``info`` is :func:`inspect_header` of ``path`` (read once by the caller: a header of
    nonsense can take seconds to inspect).
    """
    size = path.stat().st_size
    if size == 0:
        return f"{path}: the file is empty (0 bytes), not an MRC file"
    if size < HEADER_BYTES:
        return (
            f"{path}: not an MRC file ({size} bytes; an MRC header alone is {HEADER_BYTES} bytes)"
        )
    if (
        info is not None
        and info.map_ok
        and info.dtype is not None
        and info.expected_bytes is not None
        and info.expected_bytes > size
    ):
        return (
            f"{path}: the MRC file is truncated: its header describes {info.shape} "
            f"{info.dtype.name} data ({info.expected_bytes} bytes with the header) but the "
            f"file has {size} bytes"
        )
    return f"{path}: not an MRC file ({_one_line(err)})"


_OPEN_ERRORS = (ValueError, OverflowError, TypeError, MemoryError)


def open_mrc_data(path: Path, mmap: bool) -> tuple[np.ndarray, Any, list[str]]:
    """Open ``path`` and return (data, header copy, warnings), closing the file.

    A header that mrcfile rejects is retried in permissive mode only for a known MRC
    extension and only when the header's mode and sizes fit the file.
    """
    opener = mrcfile.mmap if mmap else mrcfile.open
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = opener(path, mode="r", permissive=False)
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder, not an MRC file") from None
        except OSError as err:
            raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
        except _OPEN_ERRORS as strict_err:
            info = inspect_header(path)
            message = describe_unreadable(path, strict_err, info)
            known = path.suffix.lower() in MRC_EXTENSIONS
            if not known or not plausible_header(info):
                raise InputError(message) from None
            try:
                mrc = opener(path, mode="r", permissive=True)
            except (*_OPEN_ERRORS, OSError):
                raise InputError(message) from None
            if mrc.data is None:
                mrc.close()
                raise InputError(message) from None
            notes.append(f"read in permissive mode ({_one_line(strict_err)})")
        try:
            data = mrc.data
            header = mrc.header.copy()
        finally:
            mrc.close()  # a memmap stays valid after the file is closed
    notes += [_one_line(w.message) for w in caught]
    if data is None:
        raise InputError(f"{path}: the MRC file has no readable data block")
    if mmap and not data.dtype.isnative:
        notes.append("non-native byte order: loaded into memory")
        data = np.asarray(data).astype(data.dtype.newbyteorder("="))
    elif not mmap:
        if not data.flags.writeable:
            try:
                data.flags.writeable = True  # frombuffer over mrcfile's own bytearray
            except ValueError:
                data = np.array(data)
        if not data.dtype.isnative:
            data = data.astype(data.dtype.newbyteorder("="))
    return data, header, notes


def check_volume_shape(path: Path, shape: tuple[int, ...], require_3d: bool) -> None:
    if math.prod(shape) == 0:
        raise InputError(f"{path}: holds no data (shape {shape})")
    if not require_3d:
        return
    if len(shape) == 2:
        raise InputError(f"{path}: is a 2D image of shape {shape}; a 3D volume is needed")
    if len(shape) == 4:
        raise InputError(
            f"{path}: is a stack of {shape[0]} volumes (shape {shape}); give one 3D volume"
        )
    if len(shape) != 3:
        raise InputError(f"{path}: has shape {shape}; a 3D volume is needed")
    if shape[0] == 1:
        raise InputError(f"{path}: holds a single section (shape {shape}); a 3D volume is needed")
    if min(shape) < 2:
        raise InputError(f"{path}: has shape {shape}; a 3D volume is needed")


def check_volume_values(path: Path, data: np.ndarray) -> None:
    """NaN, Inf and constant volumes, in chunks along the first axis (memory-bounded)."""
    is_float = np.issubdtype(data.dtype, np.floating)
    vmin = vmax = None
    for sl in chunks(data.shape):
        chunk = np.asarray(data[sl])
        if is_float and not np.isfinite(chunk).all():
            first = int(sl[0].start) + int(np.argwhere(~np.isfinite(chunk))[0][0])
            if np.isnan(chunk).any():
                kind = "NaN (not a number)"
            else:
                kind = "Inf (infinite)"
            raise InputError(
                f"{path}: contains {kind} values (first in file section {first}); "
                "the volume must be finite"
            )
        cmin, cmax = chunk.min(), chunk.max()
        vmin = cmin if vmin is None else min(vmin, cmin)
        vmax = cmax if vmax is None else max(vmax, cmax)
    if vmin is not None and vmin == vmax:
        raise InputError(
            f"{path}: the volume is constant (every voxel is {float(vmin):g}, zero variance); "
            "there is nothing to restore"
        )
