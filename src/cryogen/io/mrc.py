"""MRC volumes: checked, memory-mapped reading and atomic writing.

Conventions (``shared/CONVENTIONS.md``): arrays are ``(z, y, x)`` as ``mrcfile`` returns
them, the beam runs along ``z`` and the tilt axis is ``y``.  Voxel sizes are in Å and
isotropic; the origin is ``(x, y, z)`` in Å exactly as the MRC header stores it.

Reading (``read_volume``) memory-maps the file by default and checks it: the file exists,
is MRC (a file whose header mrcfile rejects is retried in permissive mode only when its
extension is a known MRC one), holds a 3D volume, is finite and not constant, and has a
usable voxel size.  Every problem is an ``InputError`` with one line naming the file.  The
opening and the checks live in :mod:`cryogen.io.mrc_checks`.

Writing never leaves half a file: data go to a hidden temporary file in the output folder
(``.NAME.<pid>-<random>.tmp``), which is renamed over the final name with ``os.replace``
only once complete; on any failure the temporary file is deleted and an existing output is
left untouched.  An existing output is refused unless ``overwrite=True``.  The file's size
is checked against the free space of its disk and its blocks are allocated before any data
are written (a full disk is a one-line ``OutputError``, never a ``SIGBUS`` mid-write), and
data holding NaN or Inf are refused (``allow_nonfinite`` to write them anyway).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from cryogen.errors import InputError, OutputError
from cryogen.io.files import atomic_output
from cryogen.io.mrc_checks import (
    HEADER_BYTES,
    MRC_EXTENSIONS,
    check_volume_shape,
    check_volume_values,
    chunks,
    open_mrc_data,
)
from cryogen.io.space import reserve_space

__all__ = [
    "MRC_EXTENSIONS",
    "Volume",
    "atomic_output",
    "create_volume_memmap",
    "header_stats",
    "read_volume",
    "rotate_beam_y_to_z",
    "rotate_beam_z_to_y",
    "write_volume",
]

logger = logging.getLogger(__name__)

_WRITE_DTYPES: dict[str, tuple[np.dtype[Any], int]] = {
    "float32": (np.dtype(np.float32), 2),
    "float16": (np.dtype(np.float16), 12),
}


# ------------------------------------------------------------------------------ volumes
@dataclass
class Volume:
    """A volume read from an MRC file.

    Attributes
    ----------
    data
        ``(z, y, x)`` array in the file's dtype.  With ``mmap=True`` it is a read-only
        ``numpy.memmap`` (or a view of one); after ``beam_axis="y"`` it is a view with a
        negative stride.  ``torch.as_tensor`` rejects negative strides and warns on
        read-only arrays: use ``load()`` to get an in-memory C-contiguous copy.
    voxel_size
        Isotropic voxel size in Å.
    origin
        ``(x, y, z)`` origin in Å as the MRC header stores it.
    path
        The file it was read from (``None`` when built in memory).
    """

    data: np.ndarray
    voxel_size: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """``(z, y, x)`` shape of ``data``."""
        return tuple(int(s) for s in self.data.shape)

    def load(self, dtype: Any = np.float32) -> np.ndarray:
        """The data in memory: a new, writable, C-contiguous array of ``dtype``.

        Returns
        -------
        np.ndarray
            ``(z, y, x)`` copy of ``data`` (ready for ``torch.from_numpy``).
        """
        out = np.empty(self.data.shape, dtype=dtype)
        for sl in chunks(self.data.shape):
            out[sl] = self.data[sl]
        return out


def rotate_beam_y_to_z(data: Any) -> Any:
    """Rotate a volume whose beam (thickness) axis is ``y`` to the beam-along-``z`` convention.

    The rotation is by -90° about ``x`` (active, right-handed ``x, y, z``; IMOD's
    ``clip rotx`` is documented as "-90 degrees about X", but its sign convention was not
    checked against IMOD's output): new ``y`` = old ``z`` and new ``z`` = -old ``y``.  It
    is a proper rotation (handedness is kept, unlike a plain ``y``/``z`` transpose), done
    as an exact axis swap plus a flip: ``out[k, j, i] = data[j, ny - 1 - k, i]``.  The
    tilt axis (the file's ``z``, the image ``y`` of the tilt series) becomes ``y``.

    Parameters
    ----------
    data
        ``(..., nz, ny, nx)`` numpy array or torch tensor, thickness along ``ny``.

    Returns
    -------
    array or tensor
        ``(..., ny, nz, nx)``.  For numpy input a view (no copy, memmaps stay memmaps,
        with a negative stride); torch tensors are copied (``torch.rot90``).
    """
    return _rot_x(data, 1)


def rotate_beam_z_to_y(data: Any) -> Any:
    """The inverse of ``rotate_beam_y_to_z``: +90° about ``x``, back to the thickness along
    ``y`` (to write results in the orientation of an IMOD input).

    ``(..., nz, ny, nx)`` -> ``(..., ny, nz, nx)`` with ``out[a, b, i] = data[nz - 1 - b, a, i]``;
    a view for numpy input, a copy for torch tensors.
    """
    return _rot_x(data, -1)


def _rot_x(data: Any, k: int) -> Any:
    if getattr(data, "ndim", 0) < 3:
        raise ValueError(f"need a (..., z, y, x) volume, got shape {tuple(data.shape)}")
    if isinstance(data, np.ndarray):
        return np.rot90(data, k, axes=(-3, -2))
    rot90 = getattr(data, "rot90", None)
    if rot90 is None:
        raise TypeError(f"expected a numpy array or torch tensor, got {type(data).__name__}")
    return rot90(k, (-3, -2))


def _voxel_size(path: Path, header: Any, pixel_size: float | None) -> float:
    sizes = []
    for cell, grid in (
        (header.cella.x, header.mx),
        (header.cella.y, header.my),
        (header.cella.z, header.mz),
    ):
        sizes.append(float(cell) / float(grid) if float(grid) != 0 else 0.0)
    sizes = [float(f"{s:.6g}") for s in sizes]  # undo float32 noise of cella / mx
    if pixel_size is not None:
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise InputError(f"pixel_size must be a positive number of Å, got {pixel_size}")
        if sizes[0] > 0 and not math.isclose(sizes[0], pixel_size, rel_tol=1e-4):
            logger.warning(
                "%s: header voxel size %.6g Å overridden by the given pixel size %.6g Å",
                path,
                sizes[0],
                pixel_size,
            )
        return float(pixel_size)
    vx = sizes[0]
    if not (math.isfinite(vx) and vx > 0):
        raise InputError(
            f"{path}: the header has voxel size {vx:g}; give the pixel size (Å)",
            advice="pixel_size",
        )
    if any(not math.isclose(vx, s, rel_tol=1e-3) for s in sizes[1:]):
        logger.warning(
            "%s: anisotropic voxel size (x, y, z) = (%g, %g, %g) Å in the header; using x = %g Å",
            path,
            *sizes,
            vx,
        )
    return vx


def read_volume(
    path: str | os.PathLike[str],
    *,
    beam_axis: str = "z",
    pixel_size: float | None = None,
    mmap: bool = True,
    require_3d: bool = True,
    check_values: bool = True,
) -> Volume:
    """Read and check an MRC volume.

    Parameters
    ----------
    path
        MRC file (``.mrc``, ``.rec``, ``.st``, ``.ali``, ``.map``; any extension whose
        header is valid MRC).  Names with several dots (``TS_01.bin4.rec``) are fine.
    beam_axis
        ``"z"`` (default): the file follows the project convention.  ``"y"``: the
        thickness (beam) is along the file's ``y`` (IMOD ``tilt`` without rotation); the
        data are rotated by -90° about ``x`` (``rotate_beam_y_to_z``, a view) so that
        the beam runs along ``z`` and the tilt axis along ``y``; the origin's ``y`` and
        ``z`` are swapped accordingly.
    pixel_size
        Voxel size in Å overriding the header (required when the header says 0).
    mmap
        Memory-map the data (read-only ``numpy.memmap``) instead of reading it.
    require_3d
        Reject 2D images, single sections and volume stacks.
    check_values
        Reject NaN, Inf and constant volumes (one pass in chunks, memory-bounded).

    Returns
    -------
    Volume
        ``data`` is ``(z, y, x)`` in the file's dtype (big-endian files are converted to
        native order in memory).

    Raises
    ------
    InputError
        One line naming the file and the problem.
    """
    if beam_axis not in ("z", "y"):
        raise InputError(f"beam axis must be 'z' or 'y', got {beam_axis!r}")
    src = Path(path)
    if not src.exists():
        raise InputError(f"{src}: file not found")
    data, header, notes = open_mrc_data(src, mmap)
    for note in notes:
        logger.warning("%s: %s", src, note)
    shape = tuple(int(s) for s in data.shape)
    check_volume_shape(src, shape, require_3d)
    if np.iscomplexobj(data):
        raise InputError(f"{src}: holds complex data ({data.dtype}); a density is needed")
    if check_values:
        check_volume_values(src, data)
    voxel = _voxel_size(src, header, pixel_size)
    origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    if beam_axis == "y":
        if data.ndim != 3:
            raise InputError(f"{src}: beam axis 'y' needs a 3D volume, got shape {shape}")
        data = rotate_beam_y_to_z(data)
        origin = (origin[0], origin[2], origin[1])
    return Volume(data=data, voxel_size=voxel, origin=origin, path=src)


# ------------------------------------------------------------------------------ writing
def header_stats(data: np.ndarray) -> tuple[float, float, float, float]:
    """(min, max, mean, rms) of ``data``, rms being the standard deviation as in MRC2014.

    Computed in float64 chunks (Chan's parallel update), so a large memmap is never
    copied whole.  :func:`create_volume_memmap` looks it up in this module at every write.
    """
    n = 0
    mean = 0.0
    m2 = 0.0
    vmin, vmax = math.inf, -math.inf
    for sl in chunks(data.shape):
        c = np.asarray(data[sl], dtype=np.float64)
        if c.size == 0:
            continue
        cn, cmean = c.size, float(c.mean())
        cm2 = float(np.square(c - cmean).sum())
        vmin, vmax = min(vmin, float(c.min())), max(vmax, float(c.max()))
        delta = cmean - mean
        tot = n + cn
        mean += delta * cn / tot
        m2 += cm2 + delta * delta * n * cn / tot
        n = tot
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0
    return vmin, vmax, mean, math.sqrt(max(m2, 0.0) / n)


def _set_header(mrc: Any, voxel_size: float, origin: Sequence[float]) -> None:
    mrc.voxel_size = float(voxel_size)
    mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(o) for o in origin)
    mrc.add_label("written by cryogen-et")


def _check_write_args(voxel_size: float, origin: Sequence[float], dtype: str) -> None:
    if not (math.isfinite(float(voxel_size)) and float(voxel_size) > 0):
        raise ValueError(f"voxel_size must be a positive number of Å, got {voxel_size}")
    if len(origin) != 3 or not all(math.isfinite(float(o)) for o in origin):
        raise ValueError(f"origin must be three finite numbers (x, y, z) in Å, got {origin}")
    if dtype not in _WRITE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_WRITE_DTYPES)}, got {dtype!r}")


def _nonfinite_error(path: str | os.PathLike[str], data: np.ndarray) -> OutputError:
    bad = sum(int(np.count_nonzero(~np.isfinite(data[sl]))) for sl in chunks(data.shape))
    return OutputError(
        f"{path}: not written: the result holds NaN or Inf in {bad} of {data.size} voxels"
    )


@contextmanager
def create_volume_memmap(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    *,
    voxel_size: float,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    overwrite: bool = False,
    dtype: str = "float32",
    fill: float | None = None,
    image_stack: bool = False,
    allow_nonfinite: bool = False,
) -> Iterator[np.memmap]:
    """Create an MRC volume on disk and yield its writable memory-mapped data.

    The file is a hidden temporary one in the output folder (``mrcfile.new_mmap``).  On a
    clean exit the header statistics are computed (in chunks) and the file is renamed to
    ``path``; on an exception it is deleted and ``path`` is left as it was.

    Parameters
    ----------
    path
        The final file.
    shape
        ``(z, y, x)``.
    voxel_size
        Å, isotropic.
    origin
        ``(x, y, z)`` in Å, stored as is in the header.
    overwrite
        Allow replacing an existing ``path``.
    dtype
        ``"float32"`` (MRC mode 2) or ``"float16"`` (mode 12).
    fill
        Value written into every voxel first; ``None`` leaves the new file's contents
        unspecified (zeros on Linux, where the new file is sparse).
    image_stack
        Mark the file as a stack of 2D images (a tilt series: space group 0) instead of a
        volume (space group 1).
    allow_nonfinite
        Write data that hold NaN or Inf; by default such data are an ``OutputError`` and
        nothing is written under ``path``.

    Raises
    ------
    OutputError
        ``path`` exists (without ``overwrite``), is an unwritable place, or its disk has
        too little free space for the file (checked, then allocated, before the data are
        written: a full disk never becomes a ``SIGBUS`` mid-write); the data hold NaN/Inf.

    Yields
    ------
    numpy.memmap
        ``(z, y, x)`` writable array; it is closed when the block ends.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (z, y, x) with positive sizes, got {shape}")
    _check_write_args(voxel_size, origin, dtype)
    np_dtype, mode = _WRITE_DTYPES[dtype]
    nbytes = HEADER_BYTES + math.prod(shape) * np_dtype.itemsize
    with atomic_output(path, overwrite, size=nbytes) as tmp:  # refused on a full disk
        mrc = mrcfile.new_mmap(tmp, shape, mrc_mode=mode)
        try:
            # the blocks now, so that a full disk is an error here and not a SIGBUS later
            reserve_space(tmp, os.path.getsize(tmp), name=path)
            if fill is not None:
                mrc.data[...] = fill
            if image_stack:
                mrc.set_image_stack()
            _set_header(mrc, voxel_size, origin)
            yield mrc.data
            dmin, dmax, dmean, rms = header_stats(mrc.data)
            if not allow_nonfinite and not all(math.isfinite(v) for v in (dmin, dmax, dmean, rms)):
                raise _nonfinite_error(path, mrc.data)
            mrc.header.dmin, mrc.header.dmax = dmin, dmax
            mrc.header.dmean, mrc.header.rms = dmean, rms
        finally:
            mrc.close()


def _to_numpy(data: Any) -> np.ndarray:
    """numpy view of a numpy array or a (CPU or GPU) torch tensor."""
    if hasattr(data, "detach") and hasattr(data, "cpu"):
        t = data.detach().cpu()
        if getattr(t, "dtype", None) is not None and str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return np.asanyarray(data)


def write_volume(
    path: str | os.PathLike[str],
    data: Any,
    *,
    voxel_size: float,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    overwrite: bool = False,
    dtype: str = "float32",
    image_stack: bool = False,
    allow_nonfinite: bool = False,
) -> Path:
    """Write a ``(z, y, x)`` volume as MRC, atomically.

    Parameters
    ----------
    path
        Output file; refused if it exists unless ``overwrite``.
    data
        ``(z, y, x)`` numpy array or torch tensor (any real dtype, any device); converted
        to ``dtype`` in chunks.
    voxel_size
        Å, isotropic.
    origin
        ``(x, y, z)`` in Å, as the MRC header stores it (pass ``Volume.origin``).
    overwrite
        Allow replacing an existing file.
    dtype
        ``"float32"`` (default, MRC mode 2) or ``"float16"`` (mode 12).
    image_stack
        Write a stack of 2D images ``(n, y, x)`` (a tilt series, space group 0).
    allow_nonfinite
        Write data that hold NaN or Inf (by default an ``OutputError``, nothing written).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OutputError
        The output exists (without ``overwrite``), its folder is missing or not writable,
        its disk is too full, or the data hold NaN/Inf; nothing is written, no temporary
        file is left.
    ValueError
        ``data`` is not 3D or is complex, or a bad ``voxel_size``/``origin``/``dtype``.
    """
    arr = _to_numpy(data)
    if arr.ndim != 3:
        raise ValueError(f"write_volume needs a (z, y, x) volume, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ValueError(f"cannot write complex data ({arr.dtype}) as a density")
    _check_write_args(voxel_size, origin, dtype)
    with create_volume_memmap(
        path, arr.shape, voxel_size=voxel_size, origin=origin, overwrite=overwrite, dtype=dtype,
        image_stack=image_stack, allow_nonfinite=allow_nonfinite,
    ) as out:  # fmt: skip
        for sl in chunks(arr.shape):
            out[sl] = arr[sl]
    return Path(path)
