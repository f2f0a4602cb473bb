"""How a volume is predicted: one frozen set of options, passed whole."""

from __future__ import annotations

from dataclasses import dataclass

from cryogen.errors import InputError

__all__ = ["DEFAULT_MAX_MEMORY", "PredictOptions"]

#: Memory (bytes) that ``keep_measured_fourier`` may use; larger volumes go out of core.
DEFAULT_MAX_MEMORY = 512 * 1024**2


@dataclass(frozen=True)
class PredictOptions:
    """Options of :func:`~cryogen.predict.predict_volume`, ``predict_stream`` and
    ``predict_file``.

    Attributes
    ----------
    tile : int or None
        Tile edge in voxels (``None``: the model's training crop size).
    overlap : int
        Least overlap of neighbouring tiles in voxels (blended with cosine ramps of this
        length).
    batch_size : int
        Tiles per forward pass.
    samples : int
        Generator passes.  1: one deterministic pass without noise.  ``N >= 2``: ``N``
        passes with Gaussian noise of standard deviation ``model.sigma_g`` (in the
        normalised units the model was trained in) added to the generator's input; the
        prediction is their mean.  The noise of voxel ``v`` in sample ``s`` depends only on
        ``(seed, s, v)``, so overlapping tiles see the same noise and the samples are
        whole-volume samples without seams.
    seed : int
        Seed of that noise.
    keep_measured : bool
        Replace the measured Fourier components of the prediction by the input's,
        ``T_M y + (1 - T_M) g(y)`` over the whole volume (:func:`keep_measured_fourier`);
        with samples, applied to their mean.  Refused for a model trained on half-sets,
        whose output is denoised where the input was measured too: keeping the input's
        components there would bring its noise back.
    tta : bool
        Average each tile's prediction (each sample's) over the rotations that keep the
        model's wedge (:func:`tta_rotations`; 4 or 2 times the generator passes).
    max_memory : int
        Bytes the ``keep_measured`` step may use before it goes out of core.
    tilt_range : (float, float) or None
        The input's tilt range, degrees: its missing wedge for ``keep_measured`` and
        ``tta``.  ``None``: the model's (a model trained on several ranges needs it).
    blur : float
        Gaussian blur of the output, sigma in voxels, applied last (0: none).  With
        samples, of their mean (the standard-deviation map is the raw samples').  For a
        model trained on half-sets it can be chosen from the half-sets
        (:func:`~cryogen.predict.half_blur.choose_half_set_blur`).
    """

    tile: int | None = None
    overlap: int = 16
    batch_size: int = 1
    samples: int = 1
    seed: int = 0
    keep_measured: bool = False
    tta: bool = False
    max_memory: int = DEFAULT_MAX_MEMORY
    tilt_range: tuple[float, float] | None = None
    blur: float = 0.0

    def check(self) -> None:
        """Raise ``InputError`` for values that cannot work (whatever the model)."""
        if self.tile is not None and self.tile < 1:
            raise InputError(f"the tile must be >= 1 voxel, got {self.tile}")
        if self.tile is not None:
            self.tile_for(self.tile)
        elif self.overlap < 0:
            raise InputError(f"overlap must be >= 0, got {self.overlap}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.samples < 1:
            raise InputError(f"samples must be >= 1, got {self.samples}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if not self.blur >= 0:  # NaN too
            raise InputError(f"the blur's sigma must be >= 0 voxels, got {self.blur}")
        if self.max_memory < 0:
            raise InputError(f"max_memory must be >= 0, got {self.max_memory}")

    def tile_for(self, crop_size: int) -> int:
        """The tile edge for a model trained on crops of ``crop_size`` (``tile``, else the
        crop), checked against ``overlap``."""
        roi = int(self.tile or crop_size)
        if not 0 <= self.overlap < roi:
            raise InputError(
                f"overlap ({self.overlap}) must be >= 0 and smaller than the tile ({roi})"
            )
        return roi
