"""Whole-volume prediction: one path, from an array in memory or a memory map.

The volume is streamed along its longest axis (:func:`cryogen.tiling.sliding_window_stream`):
rows of tiles are read, normalised with the normalisation stored at training time (and, for
samples, given noise), predicted, blended and written to ``out`` in the input's intensity
scale as soon as no later tile touches them, so memory does not grow with the volume.
:func:`predict_volume` is the same prediction into a new array.

With ``tta`` each tile's prediction is averaged over the cube rotations that keep the
model's missing wedge (``mean_R R^-1 g(R y)`` over :func:`cryogen.wedge.wedge_symmetries`,
4 for a symmetric tilt range, 2 for an asymmetric one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import torch

from cryogen.device import autocast
from cryogen.errors import InputError
from cryogen.model import LoadedModel, generator_output, memory_format
from cryogen.predict.blur import blur_in_place
from cryogen.predict.bounded_io import as_array, read_bounded, write_bounded
from cryogen.predict.keep_measured import keep_measured_fourier
from cryogen.predict.options import PredictOptions
from cryogen.rotations import rotation_mean
from cryogen.tiling import count_tiles, sliding_window_stream
from cryogen.wedge import wedge_symmetries

__all__ = ["plane_seed", "predict_stream", "predict_volume", "tta_rotations"]

logger = logging.getLogger(__name__)


def tta_rotations(
    model: LoadedModel, tta: bool, tilt_range: tuple[float, float] | None = None
) -> tuple[int, ...]:
    """The cube rotations a prediction averages over: the identity alone, or with ``tta``
    every rotation that maps the input's missing wedge (``tilt_range``, else the model's)
    onto itself."""
    if not tta:
        return (0,)
    return wedge_symmetries(*model.check_tilt_range(*(tilt_range or (None, None))))


def plane_seed(seed: int, sample: int, plane: int) -> int:
    """Seed of the noise on one plane of one sample: a function of position only, so the
    noise a voxel receives does not depend on the tile or slab that reads it."""
    return int(np.random.SeedSequence([seed, sample, plane]).generate_state(1)[0])


def predict_volume(
    model: LoadedModel,
    volume: np.ndarray | torch.Tensor,
    options: PredictOptions | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Restore the missing wedge of a whole volume.

    Parameters
    ----------
    model
        From :func:`~cryogen.model.load_model`.
    volume
        ``(z, y, x)`` array or tensor with the missing wedge of the model's tilt range.
    options
        Tiles, samples, ``tta``, ``keep_measured``... (default: ``PredictOptions()``).
    progress
        Show a progress bar over the tiles.

    Returns
    -------
    numpy.ndarray
        ``(z, y, x)`` float32 in the input's intensity scale (with samples, their mean).
    """
    src = as_array(volume)
    if src.ndim != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {tuple(src.shape)}")
    out = np.empty(src.shape, dtype=np.float32)
    predict_stream(model, src, out, options, progress=progress)
    return out


def predict_stream(
    model: LoadedModel,
    volume: np.ndarray | torch.Tensor,
    out: np.ndarray,
    options: PredictOptions | None = None,
    *,
    std_out: np.ndarray | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    description: str = "tiles",
) -> None:
    """Restore the missing wedge of a volume into ``out``, slab by slab, in bounded memory.

    Parameters
    ----------
    model
        From :func:`~cryogen.model.load_model`.
    volume
        ``(z, y, x)`` array (a ``numpy.memmap`` or a view of one is read slab by slab) or
        tensor, with the missing wedge of the model's tilt range.
    out
        ``(z, y, x)`` writable array (typically a ``numpy.memmap``) that receives the
        prediction, float32 in the input's intensity scale (the mean of the samples).
    options
        See :class:`PredictOptions` (default: ``PredictOptions()``).
    std_out
        ``(z, y, x)`` writable array for the per-voxel standard deviation of the samples
        (same units as ``out``; ``N - 1`` in the denominator; of the raw samples, before
        ``keep_measured``); needs ``samples >= 2``.
    scratch_dir
        Folder of the out-of-core scratch file of ``keep_measured`` (default: the
        system's temporary folder).
    progress, description
        Show a progress bar over the tiles, with this label.

    Raises
    ------
    InputError
        Bad options, or NaN/Inf in the volume.
    ValueError
        Shapes of ``out`` / ``std_out`` that do not match ``volume``.
    """
    options = options or PredictOptions()
    options.check()
    src = as_array(volume)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) != 3:
        raise InputError(f"expected a volume (z, y, x), got shape {shape}")
    for name, arr in (("out", out), ("std_out", std_out)):
        if arr is not None and tuple(arr.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(arr.shape)}, the volume {shape}")
    if std_out is not None and options.samples < 2:
        raise InputError("a standard-deviation map needs samples >= 2")
    roi = options.tile_for(model.crop_size)
    tilt_min, tilt_max = model.check_tilt_range(*(options.tilt_range or (None, None)))
    if options.keep_measured and model.half_sets:
        raise InputError(
            f"{model.path} was trained on half-sets: it denoises the measured region too, and "
            "keep_measured would put the input's noise back into it (on the SNR 0.2 sphere "
            "it cost 3.4 dB); predict without keep_measured"
        )
    _predict_tiles(model, src, out, std_out, options, roi, progress, description)
    if options.keep_measured:
        how = keep_measured_fourier(
            src,
            out,
            tilt_min,
            tilt_max,
            max_memory=options.max_memory,
            scratch_dir=scratch_dir,
        )
        logger.info("measured Fourier components restored (%s)", how)
    if options.blur > 0:
        blur_in_place(out, options.blur)
        logger.info("output blurred with a Gaussian of sigma %g voxels", options.blur)


def _predict_tiles(
    model: LoadedModel,
    src: np.ndarray,
    out: np.ndarray,
    std_out: np.ndarray | None,
    options: PredictOptions,
    roi: int,
    progress: bool,
    description: str,
) -> None:
    """The tiled prediction, streamed along the longest axis (the smallest buffer)."""
    shape = src.shape
    ax = int(np.argmax(shape))  # the first of equals
    perm = (ax, *[i for i in range(3) if i != ax])  # view axis j = volume axis perm[j]
    sigma = float(model.sigma_g) if options.samples > 1 else 0.0
    if options.samples > 1 and sigma == 0.0:
        logger.warning("the model's sigma_g is 0: the %d samples are identical", options.samples)
    rotations = tta_rotations(model, options.tta, options.tilt_range)
    logger.info(
        "streaming %s along axis %d: %d tiles of %d^3, %d sample(s), %d rotation(s) each",
        shape, ax, count_tiles(shape, roi, options.overlap), roi, options.samples, len(rotations),
    )  # fmt: skip
    std_v = np.moveaxis(std_out, ax, 0) if std_out is not None else None
    sliding_window_stream(
        _slab_reader(model, np.moveaxis(src, ax, 0), options, sigma),
        tuple(shape[i] for i in perm),
        _tile_predictor(model, rotations, perm, options.batch_size),
        _slab_writer(model, np.moveaxis(out, ax, 0), std_v, options.samples),
        roi_size=roi,
        overlap=options.overlap,
        sw_batch_size=options.batch_size,
        progress=progress,
        description=description,
    )


def _slab_reader(
    model: LoadedModel, src_v: np.ndarray, options: PredictOptions, sigma: float
) -> Callable[[int, int], torch.Tensor]:
    """``read(a, b)``: rows ``[a, b)`` normalised, one channel per sample (with its noise)."""
    samples, norm = options.samples, model.normalisation

    def read(a: int, b: int) -> torch.Tensor:
        raw = read_bounded(src_v[a:b])  # a copy: the memmap's pages go back
        if not np.isfinite(raw).all():
            raise InputError("the volume contains NaN or infinite values")
        t = norm.apply(torch.from_numpy(raw))  # (k, n1, n2)
        if samples == 1:
            return t[None]
        chans = t[None].repeat(samples, 1, 1, 1)
        if sigma > 0:
            noise = torch.empty(t.shape[1:], dtype=t.dtype)
            for s in range(samples):
                for j in range(b - a):
                    g = torch.Generator().manual_seed(plane_seed(options.seed, s, a + j))
                    noise.normal_(0.0, sigma, generator=g)
                    chans[s, j] += noise
        return chans

    return read


def _tile_predictor(
    model: LoadedModel, rotations: tuple[int, ...], perm: tuple[int, ...], batch_size: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tiles ``(n, samples, r, r, r)`` in the streamed view -> the generator's prediction,
    each tile turned back to the volume's orientation first (the network is not
    rotation-invariant), in batches of ``batch_size`` (tiles x samples)."""
    inv = tuple(int(i) for i in np.argsort(perm))
    dev, fmt = model.device, memory_format(model.config)

    def run(chunk: torch.Tensor) -> torch.Tensor:
        with autocast(dev, model.amp):
            o = model.generator(chunk.to(dev).contiguous(memory_format=fmt))
        return generator_output(o).float()

    @torch.no_grad()
    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        n, c, r = tiles.shape[0], tiles.shape[1], tiles.shape[-1]
        t = tiles.permute(0, 1, *(2 + i for i in inv)).reshape(n * c, 1, r, r, r)
        outs = [
            rotation_mean(run, t[i : i + batch_size], rotations)
            for i in range(0, n * c, batch_size)
        ]
        pred = torch.cat(outs).reshape(n, c, r, r, r)
        return pred.permute(0, 1, *(2 + p for p in perm))

    return predictor


def _slab_writer(
    model: LoadedModel, out_v: np.ndarray, std_v: np.ndarray | None, samples: int
) -> Callable[[int, int, torch.Tensor], None]:
    """``write(a, b, block)``: the samples' mean (and spread) in the input's units."""
    norm = model.normalisation

    def write(a: int, b: int, block: torch.Tensor) -> None:
        if samples == 1:
            write_bounded(out_v[a:b], norm.invert(block[0]).numpy())
            return
        # Welford over the samples: identical samples give a standard deviation of
        # exactly 0 and their common value as the mean
        mean = block[0].double()
        m2 = torch.zeros_like(mean)
        for k in range(1, samples):
            v = block[k].double()
            d = v - mean
            mean += d / (k + 1)
            m2 += d * (v - mean)
        write_bounded(out_v[a:b], norm.invert(mean).float().numpy())
        if std_v is not None:
            std = torch.sqrt(m2 / (samples - 1)) * abs(norm.std)
            write_bounded(std_v[a:b], std.float().numpy())

    return write
