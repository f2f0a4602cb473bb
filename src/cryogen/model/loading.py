"""A trained generator loaded for prediction, with what it was trained on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cryogen.device import pick_device, resolve_amp
from cryogen.errors import InputError
from cryogen.model.checkpoint import check_finite_weights, find_checkpoint, load_checkpoint
from cryogen.model.config import GeneratorSettings
from cryogen.model.factory import build_generator, memory_format
from cryogen.model.normalisation import Normalisation

__all__ = ["TILT_TOLERANCE", "LoadedModel", "load_model"]

#: Degrees by which an input's tilt angle may differ from the one a model was trained for.
TILT_TOLERANCE = 0.5


@dataclass
class LoadedModel:
    """A trained generator ready to predict, with what it was trained on.

    Attributes
    ----------
    generator : torch.nn.Module
        In eval mode, on ``device``.
    config : GeneratorSettings
        The generator's settings (the training run's other settings are in ``training``).
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
    sigma_g : float
        Standard deviation of the noise at the generator's input during training, in the
        normalised units (0 for a model trained without it).
    training : dict
        The training run's whole configuration, as saved.
    half_sets : bool
        Trained on half-sets (Noise2Noise): the model denoises as it fills the wedge.
    tilt_ranges : list of (float, float)
        The tilt ranges it was trained on: one, or several for a model over tomograms of
        different ranges (``tilt_min``, ``tilt_max`` are then the run's setting).
    """

    generator: nn.Module
    config: GeneratorSettings
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
    sigma_g: float = 0.0
    training: dict[str, Any] = field(default_factory=dict)
    half_sets: bool = False
    tilt_ranges: list[tuple[float, float]] = field(default_factory=list)

    def trained_ranges(self) -> list[tuple[float, float]]:
        """The tilt ranges it was trained on (its one range for older checkpoints)."""
        return self.tilt_ranges or [(self.tilt_min, self.tilt_max)]

    def check_tilt_range(
        self, tilt_min: float | None, tilt_max: float | None, where: str | None = None
    ) -> tuple[float, float]:
        """The tilt range of an input, refused unless the model was trained for it.

        ``None`` for either angle takes the model's (for a model of one range); ``where``
        names the input (a file, a STAR row) in the message.  A range within
        :data:`TILT_TOLERANCE` degrees of a trained one counts as it (refined angles of a
        ``.tlt`` differ by hundredths of a degree).  Returns the input's range.
        """
        ranges = self.trained_ranges()
        if (tilt_min is None or tilt_max is None) and len(ranges) > 1:
            shown = ", ".join(f"[{a:g}, {b:g}]" for a, b in ranges)
            raise InputError(
                f"{where or 'the input'}: give its tilt range (tilt_min, tilt_max); "
                f"{self.path} was trained on several: {shown}"
            )
        want = (
            ranges[0][0] if tilt_min is None else float(tilt_min),
            ranges[0][1] if tilt_max is None else float(tilt_max),
        )
        for r in ranges:
            if abs(want[0] - r[0]) <= TILT_TOLERANCE and abs(want[1] - r[1]) <= TILT_TOLERANCE:
                return want
        trained = ", ".join(f"[{a:g}, {b:g}]" for a, b in ranges)
        asked = f"[{want[0]:g}, {want[1]:g}]"
        if where is None:
            raise InputError(
                f"{self.path}: trained for tilt range {trained} deg, not the requested "
                f"{asked}; train a model for this tilt range"
            )
        raise InputError(
            f"{where}: tilt range {asked} deg, but {self.path} was trained for {trained}"
        )


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
        Autocast mode for inference (``"auto"``, ``"off"``, ``"bf16"``, ``"fp16"``); default
        ``"auto"`` for *this* machine, not the training run's (a checkpoint trained in bf16
        on an AVX-512 CPU or a GPU may be used on a CPU where bf16 is slow).

    Raises
    ------
    InputError
        Missing or unreadable checkpoint, one whose weights hold NaN or Inf, or one that
        does not fit the request.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    ckpt_path = find_checkpoint(path)
    state = load_checkpoint(ckpt_path)
    try:
        saved = dict(state["config"])
        config = GeneratorSettings.from_saved(saved)
        norm = Normalisation.from_dict(state["normalisation"])
        t0, t1 = float(state["tilt_min"]), float(state["tilt_max"])
        ckpt_method = str(state["method"])
        weights = state["generator"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{ckpt_path}: incomplete checkpoint ({exc})") from None
    check_finite_weights(ckpt_path, weights)
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
    gen.to(dev, memory_format=memory_format(config)).eval()  # type: ignore[call-overload]
    model = LoadedModel(
        generator=gen,
        config=config,
        normalisation=norm,
        method=ckpt_method,
        tilt_min=t0,
        tilt_max=t1,
        voxel_size=float(state.get("voxel_size", 1.0)),
        crop_size=int(state.get("crop_size") or saved.get("crop_size") or 64),
        step=int(state.get("step", 0)),
        path=ckpt_path,
        device=dev,
        amp=resolve_amp(amp or "auto", dev),
        sigma_g=float(saved.get("sigma_g", 0.0)),
        training=saved,
        half_sets=bool(state.get("half_sets", False)),
        tilt_ranges=[(float(a), float(b)) for a, b in state.get("tilt_ranges") or []],
    )
    if tilt_min is not None or tilt_max is not None:
        model.check_tilt_range(tilt_min, tilt_max)
    return model
