"""Whole-volume prediction with a trained generator (overlapping tiles, smooth blending).

``load_model`` reads a checkpoint once (a run folder's ``last.pt``, or any
``checkpoints/step_NNNNNN.pt`` snapshot) and refuses one that does not fit the request.

* ``predict_volume`` works in memory: it normalises a volume with the normalisation stored
  at training time, runs the generator over overlapping tiles
  (``cryogen.tiling.sliding_window_inference``) and returns the result in the input's
  intensity scale.
* ``predict_stream`` computes the same result between two arrays that may be memory maps
  (``cryogen.tiling.sliding_window_stream``): slab by slab along the longest axis, so its
  memory does not grow with the volume; it can also draw ``samples`` stochastic passes
  (noise of standard deviation ``sigma_g`` at the generator's input, as in training) and
  write their mean and per-voxel standard deviation.
* Both can average each tile's prediction over the cube rotations that keep the model's
  missing wedge (``tta=True``: ``mean_R R^-1 g(R y)`` over :func:`cryogen.wedge.
  wedge_symmetries`, 4 for a symmetric tilt range, 2 for an asymmetric one), a test-time
  augmentation that costs that many generator passes.
* ``predict_file`` streams an MRC file into a new MRC file (written under a temporary name
  and renamed when complete) with the input's voxel size and origin.
* ``keep_measured_fourier`` replaces the measured Fourier components of a prediction by the
  input's, exactly, over the whole volume: in memory for small volumes, else with an
  out-of-core FFT through a scratch file on disk.

Memory-mapped pages that the streaming passes have finished with are handed back to the
kernel (``madvise(MADV_DONTNEED)``; the data stay in the page cache), so the resident set
stays bounded while a tomogram larger than the memory is read and written.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.device import autocast
from cryogen.errors import InputError
from cryogen.model import LoadedModel, generator_output, load_model, memory_format
from cryogen.rotations import rotation_mean
from cryogen.tiling import count_tiles, sliding_window_inference, sliding_window_stream
from cryogen.wedge import missing_wedge_mask, wedge_operator, wedge_symmetries

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "LoadedModel",
    "PredictionResult",
    "keep_measured_fourier",
    "load_model",
    "predict_file",
    "predict_stream",
    "predict_volume",
    "tta_rotations",
]

#: Memory (bytes) that ``keep_measured_fourier`` may use; larger volumes go out of core.
DEFAULT_MAX_MEMORY = 512 * 1024**2

logger = logging.getLogger(__name__)


def tta_rotations(model: LoadedModel, tta: bool) -> tuple[int, ...]:
    """The cube rotations a prediction averages over: the identity alone, or with ``tta``
    every rotation that maps the model's missing wedge onto itself."""
    return wedge_symmetries(model.tilt_min, model.tilt_max) if tta else (0,)


def predict_volume(
    model: LoadedModel,
    volume: np.ndarray | torch.Tensor,
    *,
    tile: int | None = None,
    overlap: int = 16,
    batch_size: int = 1,
    keep_measured: bool = False,
    tta: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Restore the missing wedge of a whole volume.

    Parameters
    ----------
    model
        From :func:`load_model`.
    volume
        ``(z, y, x)`` array or tensor with the missing wedge of the model's tilt range.
    tile
        Tile edge in voxels (default: the training crop size).
    overlap
        Least overlap of neighbouring tiles in voxels (blended with cosine ramps).
    batch_size
        Tiles per forward pass.
    keep_measured
        Replace the measured Fourier components of the prediction by the input's:
        ``T_M y + (1 - T_M) g(y)`` over the whole volume.
    tta
        Average each tile's prediction over the rotations that keep the model's wedge
        (:func:`tta_rotations`; 4 or 2 times the generator passes).
    progress
        Show a progress bar over the tiles.

    Returns
    -------
    numpy.ndarray
        ``(z, y, x)`` float32 in the input's intensity scale.
    """
    x = torch.as_tensor(np.asarray(volume) if not isinstance(volume, torch.Tensor) else volume)
    if x.ndim != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError("the volume contains NaN or infinite values")
    roi = int(tile or model.crop_size)
    if not 0 <= overlap < roi:
        raise InputError(f"overlap ({overlap}) must be >= 0 and smaller than the tile ({roi})")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    dev = model.device
    xn = model.normalisation.apply(x.to(torch.float32)).to(dev)
    rotations = tta_rotations(model, tta)

    @torch.no_grad()
    def run(tiles: torch.Tensor) -> torch.Tensor:
        fmt = memory_format(model.config)
        with autocast(dev, model.amp):
            out = model.generator(tiles.contiguous(memory_format=fmt))
        return generator_output(out).float()

    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        return rotation_mean(run, tiles, rotations).contiguous()

    with torch.no_grad():
        pred = sliding_window_inference(
            xn,
            predictor,
            roi_size=roi,
            overlap=overlap,
            sw_batch_size=batch_size,
            progress=progress,
        )
        if keep_measured:
            mask = missing_wedge_mask(
                tuple(pred.shape), model.tilt_min, model.tilt_max, device=pred.device
            )
            pred = wedge_operator(xn - pred, mask) + pred
        out = model.normalisation.invert(pred)
    return out.cpu().numpy().astype(np.float32, copy=False)


# ------------------------------------------------------------------------------ streaming
def _release(*arrays: Any) -> None:
    """Drop the resident pages of memory-mapped arrays from this process (Linux ``madvise``).

    Only shared mappings (``numpy.memmap`` modes ``r``, ``r+``, ``w+``) are touched: their
    data stay in the page cache (dirty pages are still written back), so later reads see
    them; the pages just stop counting in the resident set.  Anything else is ignored.
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # pragma: no cover - not Linux/BSD
        return
    for arr in arrays:
        mm = getattr(arr, "_mmap", None)
        if mm is None or getattr(arr, "mode", None) not in ("r", "r+", "w+"):
            continue
        with suppress(AttributeError, ValueError, OSError):
            mm.madvise(advice)


#: Bytes of a memory-mapped file that a bounded copy touches before handing pages back.
_TOUCH_BYTES = 64 * 1024**2


def _chunks_along_outer_axis(view: np.ndarray) -> list[tuple[slice, ...]]:
    """Index tuples that split ``view`` along its slowest-varying axis in memory (largest
    stride) into pieces spanning about ``_TOUCH_BYTES`` of the underlying buffer.

    A slab of a ``(z, y, x)`` file cut along ``y`` touches every ``z`` plane; the kernel may
    map whole page-cache folios around each access, so the copy is done plane group by plane
    group with the pages released in between.
    """
    if view.ndim == 0 or view.size == 0:
        return [()]
    k = int(np.argmax([abs(st) for st in view.strides]))
    step = max(1, _TOUCH_BYTES // max(1, abs(view.strides[k])))
    n = view.shape[k]
    head = (slice(None),) * k
    return [(*head, slice(i, min(n, i + step))) for i in range(0, n, step)]


def _read_bounded(view: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """An in-memory copy of ``view`` (a memory map or a view of one), touching at most about
    ``_TOUCH_BYTES`` of the mapping before its pages are released."""
    out = np.empty(view.shape, dtype=dtype)
    for idx in _chunks_along_outer_axis(view):
        out[idx] = view[idx]
        _release(view)
    return out


def _write_bounded(view: np.ndarray, data: np.ndarray) -> None:
    """``view[...] = data`` for a memory-mapped ``view``, releasing pages every
    ``_TOUCH_BYTES`` of the mapping."""
    for idx in _chunks_along_outer_axis(view):
        view[idx] = data[idx]
        _release(view)


def _stream_axis(shape: tuple[int, ...]) -> int:
    """The longest axis (the first of equals): streaming along it needs the smallest buffer."""
    return int(np.argmax(shape))


def _plane_seed(seed: int, sample: int, plane: int) -> int:
    """Seed of the noise on one plane of one sample: a function of position only, so the
    noise a voxel receives does not depend on the tile or slab that reads it."""
    return int(np.random.SeedSequence([seed, sample, plane]).generate_state(1)[0])


def _as_array(volume: Any) -> np.ndarray:
    if isinstance(volume, torch.Tensor):
        return volume.detach().cpu().numpy()
    return volume if isinstance(volume, np.ndarray) else np.asarray(volume)


def predict_stream(
    model: LoadedModel,
    volume: np.ndarray | torch.Tensor,
    out: np.ndarray,
    *,
    std_out: np.ndarray | None = None,
    tile: int | None = None,
    overlap: int = 16,
    batch_size: int = 1,
    samples: int = 1,
    seed: int = 0,
    keep_measured: bool = False,
    tta: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
    scratch_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    description: str = "tiles",
) -> None:
    """Restore the missing wedge of a volume into ``out``, slab by slab, in bounded memory.

    The volume is streamed along its longest axis (``sliding_window_stream``): rows of
    tiles are read, normalised, predicted, blended and written to ``out`` as soon as no
    later tile touches them.  With ``samples == 1`` the result equals
    :func:`predict_volume` up to float rounding (blending is accumulated in float64).

    Parameters
    ----------
    model
        From :func:`load_model`.
    volume
        ``(z, y, x)`` array (a ``numpy.memmap`` or a view of one is read slab by slab) or
        tensor, with the missing wedge of the model's tilt range.
    out
        ``(z, y, x)`` writable array (typically a ``numpy.memmap``) that receives the
        prediction, float32 in the input's intensity scale (the mean of the samples).
    std_out
        ``(z, y, x)`` writable array for the per-voxel standard deviation of the samples
        (same units as ``out``; ``N - 1`` in the denominator); needs ``samples >= 2``.
    tile
        Tile edge in voxels (default: the training crop size).
    overlap
        Least overlap of neighbouring tiles in voxels (blended with cosine ramps).
    batch_size
        Tiles per forward pass.
    samples
        Number of generator passes.  1: one deterministic pass without noise.  ``N >= 2``:
        ``N`` passes with Gaussian noise of standard deviation ``model.sigma_g``
        (in the normalised units the model was trained in) added to the generator's input.
        The noise of voxel ``v`` in sample ``s`` depends only on ``(seed, s, v)`` (one
        random stream per plane along the streaming axis), so overlapping tiles see the
        same noise and the samples are whole-volume samples without seams.
    seed
        Seed of that noise.
    keep_measured
        After the prediction, replace its measured Fourier components by the input's
        (:func:`keep_measured_fourier`, exact over the whole volume).  With ``samples >= 2``
        it is applied to the mean; ``std_out`` is the spread of the raw samples.
    tta
        Average each tile's prediction (each sample's) over the rotations that keep the
        model's wedge (:func:`tta_rotations`; 4 or 2 times the generator passes).
    max_memory
        Bytes the ``keep_measured`` step may use before it goes out of core.
    scratch_dir
        Folder of the out-of-core scratch file (default: the system's temporary folder).
    progress
        Show a progress bar over the tiles.
    description
        Label of the progress bar.

    Raises
    ------
    InputError
        Bad tile, overlap, batch size or sample count, or NaN/Inf in the volume.
    ValueError
        Shapes of ``out`` / ``std_out`` that do not match ``volume``.
    """
    src = _as_array(volume)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {shape}")
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, the volume {shape}")
    if std_out is not None and tuple(std_out.shape) != shape:
        raise ValueError(f"std_out has shape {tuple(std_out.shape)}, the volume {shape}")
    roi = int(tile or model.crop_size)
    if roi < 1:
        raise InputError(f"the tile must be >= 1 voxel, got {roi}")
    if not 0 <= overlap < roi:
        raise InputError(f"overlap ({overlap}) must be >= 0 and smaller than the tile ({roi})")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if samples < 1:
        raise InputError(f"samples must be >= 1, got {samples}")
    if std_out is not None and samples < 2:
        raise InputError("a standard-deviation map needs samples >= 2")
    sigma = float(model.sigma_g) if samples > 1 else 0.0
    if samples > 1 and sigma == 0.0:
        logger.warning("the model's sigma_g is 0: the %d samples are identical", samples)

    ax = _stream_axis(shape)
    perm = (ax, *[i for i in range(3) if i != ax])  # view axis j = volume axis perm[j]
    inv = tuple(int(i) for i in np.argsort(perm))
    src_v = np.moveaxis(src, ax, 0)
    out_v = np.moveaxis(out, ax, 0)
    std_v = np.moveaxis(std_out, ax, 0) if std_out is not None else None
    view_shape = tuple(shape[i] for i in perm)
    norm = model.normalisation
    dev = model.device
    fmt = memory_format(model.config)
    rotations = tta_rotations(model, tta)

    def run(chunk: torch.Tensor) -> torch.Tensor:
        with autocast(dev, model.amp):
            o = model.generator(chunk.to(dev).contiguous(memory_format=fmt))
        return generator_output(o).float()

    def read(a: int, b: int) -> torch.Tensor:
        raw = _read_bounded(src_v[a:b])  # a copy: the memmap's pages go back
        if not np.isfinite(raw).all():
            raise InputError("the volume contains NaN or infinite values")
        t = norm.apply(torch.from_numpy(raw))  # (k, n1, n2)
        if samples == 1:
            return t[None]
        chans = t[None].repeat(samples, 1, 1, 1)
        if sigma > 0:
            noise = torch.empty(t.shape[1:], dtype=t.dtype)
            for s_ in range(samples):
                for j in range(b - a):
                    g = torch.Generator().manual_seed(_plane_seed(seed, s_, a + j))
                    noise.normal_(0.0, sigma, generator=g)
                    chans[s_, j] += noise
        return chans

    @torch.no_grad()
    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        n, c, r = tiles.shape[0], tiles.shape[1], tiles.shape[-1]
        t = tiles.permute(0, 1, *(2 + i for i in inv)).reshape(n * c, 1, r, r, r)
        outs = []
        for i in range(0, n * c, batch_size):
            outs.append(rotation_mean(run, t[i : i + batch_size], rotations))
        pred = torch.cat(outs).reshape(n, c, r, r, r)
        return pred.permute(0, 1, *(2 + p for p in perm))

    def write(a: int, b: int, block: torch.Tensor) -> None:
        if samples == 1:
            _write_bounded(out_v[a:b], norm.invert(block[0]).numpy())
        else:
            # Welford over the samples: identical samples give a standard deviation of
            # exactly 0 and their common value as the mean
            mean = block[0].double()
            m2 = torch.zeros_like(mean)
            for k in range(1, samples):
                v = block[k].double()
                d = v - mean
                mean += d / (k + 1)
                m2 += d * (v - mean)
            _write_bounded(out_v[a:b], norm.invert(mean).float().numpy())
            if std_v is not None:
                std = torch.sqrt(m2 / (samples - 1)) * abs(norm.std)
                _write_bounded(std_v[a:b], std.float().numpy())

    logger.info(
        "streaming %s along axis %d: %d tiles of %d^3, %d sample(s), %d rotation(s) each",
        shape,
        ax,
        count_tiles(shape, roi, overlap),
        roi,
        samples,
        len(rotations),
    )
    sliding_window_stream(
        read,
        view_shape,
        predictor,
        write,
        roi_size=roi,
        overlap=overlap,
        sw_batch_size=batch_size,
        progress=progress,
        description=description,
    )
    if keep_measured:
        how = keep_measured_fourier(
            src,
            out,
            model.tilt_min,
            model.tilt_max,
            max_memory=max_memory,
            scratch_dir=scratch_dir,
        )
        logger.info("measured Fourier components restored (%s)", how)


# ------------------------------------------------------------------------------ data consistency
def _chunk(n: int, per_item_bytes: int, budget: int) -> int:
    """Items per chunk so that a chunk uses about ``budget`` bytes (at least 1)."""
    return max(1, min(n, budget // max(1, per_item_bytes)))


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
    the missing wedge comes from the prediction.  It is the same operation as
    ``predict_volume(..., keep_measured=True)``; intensity offsets and scales cancel, so it
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
      coefficient (measured: see ``tests/test_predict_stream.py``).

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
    src = _as_array(volume)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) != 3 or tuple(out.shape) != shape:
        raise ValueError(f"volume {shape} and out {tuple(out.shape)} must be equal (z, y, x)")
    nz, ny, nx = shape
    nxh = nx // 2 + 1
    mask = missing_wedge_mask((nz, 1, nx), tilt_min, tilt_max, dtype=torch.float64)  # (nz,1,nxh)
    if math.prod(shape) * 48 <= max_memory:
        x = torch.from_numpy(np.array(src, dtype=np.float64))
        g = torch.from_numpy(np.array(out, dtype=np.float64))
        out[...] = (g + wedge_operator(x - g, mask)).numpy()
        return "in-memory"

    fd, name = tempfile.mkstemp(prefix=".cryogen-spectrum-", suffix=".tmp", dir=scratch_dir)
    os.close(fd)
    spec: np.memmap | None = None
    try:
        spec = np.memmap(name, dtype=np.complex64, mode="w+", shape=(nz, ny, nxh))
        # 1. 2D FFT of every (y, x) plane of the difference
        step = _chunk(nz, ny * nx * 64, max_memory)
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            d = _read_bounded(src[z0:z1], np.float64) - _read_bounded(out[z0:z1], np.float64)
            _write_bounded(spec[z0:z1], torch.fft.rfft2(torch.from_numpy(d)).numpy())
            del d
        # 2. along z: FFT, mask, inverse FFT (the mask does not depend on ky)
        m = mask[:, 0, :][:, None, :]  # (nz, 1, nxh)
        rows = _chunk(ny, nz * nxh * 64, max_memory)
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            blk = torch.from_numpy(_read_bounded(spec[:, y0:y1], np.complex128))
            blk = torch.fft.ifft(torch.fft.fft(blk, dim=0) * m, dim=0)
            _write_bounded(spec[:, y0:y1], blk.numpy())
            del blk
        # 3. inverse 2D FFT of every plane, added to the prediction
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            planes = torch.from_numpy(_read_bounded(spec[z0:z1], np.complex128))
            t = torch.fft.irfft2(planes, s=(ny, nx)).numpy()
            _write_bounded(out[z0:z1], _read_bounded(out[z0:z1], np.float64) + t)
            del planes, t
    finally:
        del spec  # unmaps the scratch file
        with suppress(OSError):
            os.unlink(name)
    return "out-of-core"


# ------------------------------------------------------------------------------ files
@dataclass
class PredictionResult:
    """What :func:`predict_file` wrote.

    Attributes
    ----------
    output, std
        The prediction and the standard-deviation map (``None`` without samples).
    shape
        ``(z, y, x)`` of the written files (the input file's orientation).
    voxel_size
        Å.
    seconds
        Wall-clock time of the prediction.
    tiles
        Tiles per sample.
    """

    output: Path
    std: Path | None
    shape: tuple[int, int, int]
    voxel_size: float
    seconds: float
    tiles: int


def predict_file(
    model: LoadedModel,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    std_path: str | os.PathLike[str] | None = None,
    beam_axis: str = "z",
    pixel_size: float | None = None,
    tile: int | None = None,
    overlap: int = 16,
    batch_size: int = 1,
    samples: int = 1,
    seed: int = 0,
    keep_measured: bool = False,
    tta: bool = False,
    overwrite: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
    progress: bool = False,
) -> PredictionResult:
    """Stream an MRC tomogram through the generator into a new MRC file.

    The input is memory-mapped and read slab by slab; the output is a memory-mapped MRC
    written under a hidden temporary name in its folder and renamed only when complete
    (``cryogen.io.create_volume_memmap``), with the input's voxel size (or
    ``pixel_size``), origin and intensity scale, in the input file's orientation (also
    with ``beam_axis="y"``).  See :func:`predict_stream` for the other arguments; the
    out-of-core scratch file of ``keep_measured`` goes to the output's folder.

    Raises
    ------
    InputError
        Unreadable input, NaN/Inf in it (the message names the file), bad arguments.
    OutputError
        An output exists (without ``overwrite``) or cannot be written; nothing is left.
    """
    from cryogen.io import create_volume_memmap, read_volume, rotate_beam_y_to_z

    src = Path(input_path)
    dst = Path(output_path)
    vol = read_volume(src, beam_axis=beam_axis, pixel_size=pixel_size, check_values=False)
    file_shape: tuple[int, ...]
    if beam_axis == "y":  # write in the file's own orientation: undo read_volume's rotation
        n0, n1, n2 = vol.shape
        file_shape = (n1, n0, n2)
        ox, oy, oz = vol.origin
        origin = (ox, oz, oy)
    else:
        file_shape = vol.shape
        origin = vol.origin
    roi = int(tile or model.crop_size)
    tiles = count_tiles(vol.shape, roi, overlap) if 0 <= overlap < roi else 0
    t0 = time.perf_counter()
    opts = dict(voxel_size=vol.voxel_size, origin=origin, overwrite=overwrite)
    try:
        with create_volume_memmap(dst, file_shape, **opts) as mm:  # type: ignore[arg-type]
            out_v = rotate_beam_y_to_z(mm) if beam_axis == "y" else mm
            kw: dict[str, Any] = dict(
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                samples=samples,
                seed=seed,
                keep_measured=keep_measured,
                tta=tta,
                max_memory=max_memory,
                scratch_dir=dst.parent,
                progress=progress,
                description=src.name,
            )
            if std_path is None:
                predict_stream(model, vol.data, out_v, **kw)
            else:
                with create_volume_memmap(std_path, file_shape, **opts) as sm:  # type: ignore[arg-type]
                    std_v = rotate_beam_y_to_z(sm) if beam_axis == "y" else sm
                    predict_stream(model, vol.data, out_v, std_out=std_v, **kw)
                    del std_v
                del sm  # unmap the finished std file before the output's statistics pass
            del out_v
    except InputError as exc:
        raise InputError(f"{src}: {exc}") from None
    finally:
        _release(vol.data)
    return PredictionResult(
        output=dst,
        std=Path(std_path) if std_path is not None else None,
        shape=tuple(int(n) for n in file_shape),  # type: ignore[arg-type]
        voxel_size=float(vol.voxel_size),
        seconds=time.perf_counter() - t0,
        tiles=tiles,
    )
