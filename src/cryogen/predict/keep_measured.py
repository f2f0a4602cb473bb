"""Keep the measured data: the measured Fourier components of a prediction replaced by the
input's, exactly, over the whole volume, in memory or out of core."""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import suppress

import numpy as np
import torch

from cryogen.io.space import reserve_space
from cryogen.predict.bounded_io import as_array, read_bounded, write_bounded
from cryogen.predict.options import DEFAULT_MAX_MEMORY
from cryogen.wedge import missing_wedge_mask, wedge_operator

__all__ = ["keep_measured_fourier"]

#: Bytes per voxel of the in-memory method (float64 volumes and complex128 spectra).
IN_MEMORY_BYTES_PER_VOXEL = 48


def keep_measured_fourier(
    volume: np.ndarray | torch.Tensor,
    out: np.ndarray,
    tilt_min: float,
    tilt_max: float,
    *,
    max_memory: int = DEFAULT_MAX_MEMORY,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Replace the measured Fourier components of ``out`` by those of ``volume``, in place.

    ``out <- out + T_M(volume - out)``, i.e. ``T_M volume + (1 - T_M) out`` with ``T_M``
    the wedge operator of the whole volume (``cryogen.wedge``, binary mask): afterwards
    ``T_M out == T_M volume`` (the data outside the missing wedge are the input's) and only
    the missing wedge comes from the prediction.  Intensity offsets and scales cancel, so it
    may be applied in the input's units.

    Two exact methods, chosen by memory:

    * in memory (float64 FFT of the whole volume) when about ``48`` bytes per voxel fit in
      ``max_memory``;
    * out of core otherwise: the 3D FFT is split into its separable parts, 2D FFTs of
      ``(y, x)`` planes in chunks along ``z``, then 1D FFTs along ``z`` (mask applied, inverse
      FFT) in chunks of ``y`` rows, then inverse 2D FFTs of the planes added to ``out``.  The
      half spectrum lives in a complex64 scratch file (``z * y * (x // 2 + 1) * 8`` bytes,
      about the size of the volume in float32) in ``scratch_dir``, deleted afterwards.
      Every chunk is computed in float64; the only approximation is the complex64 storage
      of the spectrum (relative rounding about 6e-8 per coefficient), so the measured
      coefficients of the result match the input's to about 1e-6 of the largest
      coefficient.

    Parameters
    ----------
    volume
        ``(z, y, x)`` input (array, memory map or tensor).
    out
        ``(z, y, x)`` writable float array (typically a ``numpy.memmap``), same shape.
    tilt_min, tilt_max
        Tilt range of the input, degrees.
    max_memory
        Bytes this step may use (chunk sizes of the out-of-core method, and the limit of
        the in-memory one).
    scratch_dir
        Folder of the scratch file (default: the system's temporary folder).

    Returns
    -------
    str
        ``"in-memory"`` or ``"out-of-core"``.
    """
    src = as_array(volume)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) != 3 or tuple(out.shape) != shape:
        raise ValueError(f"volume {shape} and out {tuple(out.shape)} must be equal (z, y, x)")
    nz, _, nx = shape
    mask = missing_wedge_mask((nz, 1, nx), tilt_min, tilt_max, dtype=torch.float64)  # (nz,1,nxh)
    if math.prod(shape) * IN_MEMORY_BYTES_PER_VOXEL <= max_memory:
        x = torch.from_numpy(np.array(src, dtype=np.float64))
        g = torch.from_numpy(np.array(out, dtype=np.float64))
        out[...] = (g + wedge_operator(x - g, mask)).numpy()
        return "in-memory"
    fd, name = tempfile.mkstemp(prefix=".cryogen-spectrum-", suffix=".tmp", dir=scratch_dir)
    os.close(fd)
    try:
        _out_of_core(src, out, mask[:, 0, :][:, None, :], name, max_memory)
    finally:
        with suppress(OSError):
            os.unlink(name)
    return "out-of-core"


def _chunk(n: int, per_item_bytes: int, budget: int) -> int:
    """Items per chunk so that a chunk uses about ``budget`` bytes (at least 1)."""
    return max(1, min(n, budget // max(1, per_item_bytes)))


def _out_of_core(
    src: np.ndarray, out: np.ndarray, mask: torch.Tensor, scratch: str, max_memory: int
) -> None:
    """``out += T_M(src - out)`` through a complex64 half spectrum in the file ``scratch``;
    ``mask`` ``(nz, 1, nx // 2 + 1)`` (it does not depend on ``ky``)."""
    nz, ny, nx = src.shape
    spec = np.memmap(scratch, dtype=np.complex64, mode="w+", shape=(nz, ny, nx // 2 + 1))
    try:
        reserve_space(scratch, spec.nbytes)  # a full disk: an error now, not a SIGBUS later
        # 1. 2D FFT of every (y, x) plane of the difference
        step = _chunk(nz, ny * nx * 64, max_memory)
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            d = read_bounded(src[z0:z1], np.float64) - read_bounded(out[z0:z1], np.float64)
            write_bounded(spec[z0:z1], torch.fft.rfft2(torch.from_numpy(d)).numpy())
            del d
        # 2. along z: FFT, mask, inverse FFT
        rows = _chunk(ny, nz * (nx // 2 + 1) * 64, max_memory)
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            blk = torch.from_numpy(read_bounded(spec[:, y0:y1], np.complex128))
            blk = torch.fft.ifft(torch.fft.fft(blk, dim=0) * mask, dim=0)
            write_bounded(spec[:, y0:y1], blk.numpy())
            del blk
        # 3. inverse 2D FFT of every plane, added to the prediction
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            planes = torch.from_numpy(read_bounded(spec[z0:z1], np.complex128))
            t = torch.fft.irfft2(planes, s=(ny, nx)).numpy()
            write_bounded(out[z0:z1], read_bounded(out[z0:z1], np.float64) + t)
            del planes, t
    finally:
        del spec  # unmaps the scratch file
