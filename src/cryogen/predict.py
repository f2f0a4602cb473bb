"""Whole-volume prediction with a trained generator (overlapping tiles, smooth blending).

``load_model`` reads a checkpoint once (a run folder's ``last.pt``, or any
``checkpoints/step_NNNNNN.pt`` snapshot) and refuses one that does not fit the request;
``predict_volume`` normalises a volume with the normalisation stored at training time, runs
the generator over overlapping tiles (``cryogen.tiling.sliding_window_inference``) and
returns the result in the input's intensity scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cryogen.device import autocast, pick_device, resolve_amp
from cryogen.errors import InputError
from cryogen.tiling import sliding_window_inference
from cryogen.train.checkpoint import find_checkpoint, load_checkpoint
from cryogen.train.config import TrainConfig
from cryogen.train.data import Normalisation
from cryogen.train.engine import build_generator, generator_output
from cryogen.wedge import missing_wedge_mask, wedge_operator

__all__ = ["LoadedModel", "load_model", "predict_volume"]

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A trained generator ready to predict, with what it was trained on.

    Attributes
    ----------
    generator : torch.nn.Module
        In eval mode, on ``device``.
    config : TrainConfig
    normalisation : Normalisation
    method : str
    tilt_min, tilt_max : float
        Tilt range (degrees) of the training data.
    voxel_size : float
        Å per voxel of the training data.
    crop_size : int
        Edge of the training crops (the default tile).
    step : int
        Training steps behind these weights.
    path : Path
        The checkpoint file.
    device : torch.device
    amp : torch.dtype or None
        Autocast dtype used for inference.
    """

    generator: nn.Module
    config: TrainConfig
    normalisation: Normalisation
    method: str
    tilt_min: float
    tilt_max: float
    voxel_size: float
    crop_size: int
    step: int
    path: Path
    device: torch.device
    amp: torch.dtype | None


def load_model(
    path: str | Path,
    device: str | torch.device = "auto",
    *,
    tilt_min: float | None = None,
    tilt_max: float | None = None,
    method: str | None = None,
    amp: str | None = None,
) -> LoadedModel:
    """Load a trained generator from a run folder or a checkpoint file.

    Parameters
    ----------
    path
        A run folder (its ``last.pt``, else its newest snapshot) or a checkpoint file.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ... or a ``torch.device``.
    tilt_min, tilt_max
        When given, the checkpoint must have been trained for this tilt range (degrees).
    method
        When given, the checkpoint must have been trained with this method.
    amp
        Autocast mode for inference (``"auto"``, ``"off"``, ``"bf16"``, ``"fp16"``); default:
        the training config's.

    Raises
    ------
    InputError
        Missing or unreadable checkpoint, or one that does not fit the request.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    ckpt_path = find_checkpoint(path)
    state = load_checkpoint(ckpt_path)
    try:
        config = TrainConfig.model_validate(state["config"])
        norm = Normalisation.from_dict(state["normalisation"])
        t0, t1 = float(state["tilt_min"]), float(state["tilt_max"])
        ckpt_method = str(state["method"])
        weights = state["generator"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{ckpt_path}: incomplete checkpoint ({exc})") from None
    if tilt_min is not None or tilt_max is not None:
        want = (
            t0 if tilt_min is None else float(tilt_min),
            t1 if tilt_max is None else float(tilt_max),
        )
        if abs(want[0] - t0) > 1e-6 or abs(want[1] - t1) > 1e-6:
            raise InputError(
                f"{ckpt_path}: trained for tilt range [{t0:g}, {t1:g}] deg, not the requested "
                f"[{want[0]:g}, {want[1]:g}]; train a model for this tilt range"
            )
    if method is not None and method != ckpt_method:
        raise InputError(
            f"{ckpt_path}: trained with method {ckpt_method!r}, not the requested {method!r}"
        )
    gen = build_generator(config)
    try:
        gen.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{ckpt_path}: weights do not fit the generator ({first})") from None
    fmt = torch.channels_last_3d if config.channels_last else torch.contiguous_format
    gen.to(dev, memory_format=fmt).eval()
    amp_dtype = resolve_amp(amp or config.amp, dev)
    return LoadedModel(
        generator=gen,
        config=config,
        normalisation=norm,
        method=ckpt_method,
        tilt_min=t0,
        tilt_max=t1,
        voxel_size=float(state.get("voxel_size", 1.0)),
        crop_size=int(state.get("crop_size", config.crop_size)),
        step=int(state.get("step", 0)),
        path=ckpt_path,
        device=dev,
        amp=amp_dtype,
    )


def predict_volume(
    model: LoadedModel,
    volume: np.ndarray | torch.Tensor,
    *,
    tile: int | None = None,
    overlap: int = 16,
    batch_size: int = 1,
    keep_measured: bool = False,
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

    @torch.no_grad()
    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last_3d if model.config.channels_last else torch.contiguous_format
        with autocast(dev, model.amp):
            out = model.generator(tiles.contiguous(memory_format=fmt))
        return generator_output(out).float().contiguous()

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
