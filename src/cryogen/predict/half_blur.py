"""A Gaussian blur of a half-set model's output, its width chosen without the truth.

A model trained on half-sets (Noise2Noise) is still noisy where training was short. How
much to smooth its output can be chosen from the half-sets themselves: the prediction from
half 1, blurred with ``sigma``, is compared with half 2 where half 2 was measured, and the
other way round.  The noise of half 2 is independent of half 1's (and of its prediction),
so the expected error is the blurred prediction's distance to the true volume in the
measured region plus a constant (half 2's noise); the ``sigma`` of least error is the best
blur of the measured region, without knowing the truth.  The missing wedge cannot be
validated that way (no half measured it); it gets the same blur.

The output, though, is the prediction of the tomogram, the mean of the halves, whose input
has half a half's noise variance.  Where the network acts about linearly on the noise, the
noise left in its prediction is then half that of a half's prediction, and the difference
of the two halves' predictions measures it: ``|G_s (p1 - p2)|^2 / 2`` is the noise of one
half's blurred prediction, so a quarter of it per pair is taken off.  Without that term the
choice is for a half's noisier prediction and blurs the mean's too much (on the noisy
phantom sphere after a long training: 0.625 voxels, 0.15 dB below the best width, 0.5,
which the corrected error finds).

The comparison runs on a central region of at most ``CV_EDGE`` voxels per axis.  Where the
region is the whole volume the hard wedge mask is exact; where it is cut out, both sides
are tapered at the faces and compared only at least ``CV_GUARD`` Fourier pixels from the
missing wedge, which the taper's smear does not cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from cryogen.errors import InputError
from cryogen.model import LoadedModel
from cryogen.predict.blur import TRUNCATE
from cryogen.predict.bounded_io import as_array, read_bounded, release
from cryogen.predict.options import PredictOptions
from cryogen.predict.volume import predict_volume
from cryogen.wedge import cosine_taper, guarded_wedge_mask, missing_wedge_mask

__all__ = [
    "BLUR_SIGMAS",
    "CV_EDGE",
    "BlurChoice",
    "central_region",
    "choose_half_set_blur",
    "half_set_blur_errors",
]

#: The blur widths tried (Gaussian sigma, voxels); 0 is no blur.
BLUR_SIGMAS: tuple[float, ...] = tuple(0.125 * i for i in range(17))  # 0 .. 2
#: The largest edge of the region the half-sets are compared on, voxels.
CV_EDGE = 160
#: Taper (voxels at each face) and guard band (Fourier pixels) of a cut-out region.
CV_TAPER = 16
CV_GUARD = 3.0


@dataclass(frozen=True)
class BlurChoice:
    """A blur width chosen by cross-validation between half-sets.

    Attributes
    ----------
    sigma
        The chosen Gaussian sigma, voxels (0: no blur).
    sigmas, errors
        Every width tried and its error, relative to no blur (1.0).
    region
        Shape of the central region compared.
    """

    sigma: float
    sigmas: tuple[float, ...]
    errors: tuple[float, ...]
    region: tuple[int, int, int]

    @classmethod
    def from_errors(
        cls, errors: np.ndarray, sigmas: Sequence[float], region: Sequence[int]
    ) -> BlurChoice:
        """The width of least error (:func:`half_set_blur_errors`); ``sigmas[0]`` must be 0
        (no blur), the reference of the relative errors."""
        if len(sigmas) == 0 or sigmas[0] != 0:
            raise ValueError("the first blur width must be 0 (no blur)")
        if not np.all(np.isfinite(errors)) or errors[0] <= 0:
            raise InputError("the half-sets' comparison gave no finite error; is a half-set empty?")
        best = int(np.argmin(errors))
        return cls(
            float(sigmas[best]),
            tuple(float(s) for s in sigmas),
            tuple(float(e) for e in errors / errors[0]),
            (int(region[0]), int(region[1]), int(region[2])),
        )

    def describe(self) -> str:
        """One line for the console and the log."""
        where = "x".join(str(n) for n in self.region)
        if self.sigma == 0:
            return f"not blurred: the half-sets chose no blur ({where} voxels compared)"
        return (
            f"Gaussian blur of sigma {self.sigma:g} voxels, chosen from the half-sets "
            f"({where} voxels compared)"
        )


def central_region(shape: Sequence[int], edge: int = CV_EDGE) -> tuple[slice, slice, slice]:
    """The central ``min(n, edge)`` voxels along each axis."""
    out = []
    for n in shape:
        k = min(int(n), edge)
        start = (int(n) - k) // 2
        out.append(slice(start, start + k))
    return out[0], out[1], out[2]


def half_set_blur_errors(
    pred1: np.ndarray,
    pred2: np.ndarray,
    half1: np.ndarray,
    half2: np.ndarray,
    tilt_range: tuple[float, float],
    *,
    cut_out: bool,
    sigmas: Sequence[float] = BLUR_SIGMAS,
) -> np.ndarray:
    """Cross-validation error of each blur width for the prediction of the halves' mean:
    ``E(s) = |G_s p1 - h2|^2 + |G_s p2 - h1|^2 - |G_s (p1 - p2)|^2 / 2``, norms taken over
    the measured region ``M`` of ``tilt_range`` in Fourier space (``p1``, ``p2``: the
    predictions of ``h1``, ``h2``).  Up to a constant it is twice the error of the blurred
    prediction of the mean (see the module).

    ``cut_out``: the volumes are a region cut from larger ones (both sides are then
    tapered and compared away from the wedge's border).
    """
    shape = (int(pred1.shape[0]), int(pred1.shape[1]), int(pred1.shape[2]))
    for name, v in (("pred2", pred2), ("half1", half1), ("half2", half2)):
        if tuple(v.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(v.shape)}, pred1 {shape}")
    if cut_out:
        widths = [min(CV_TAPER, n // 4) for n in shape]
        window = cosine_taper(shape, widths, dtype=torch.float64).numpy()
        mask = guarded_wedge_mask(shape, *tilt_range, CV_GUARD)[:, :1, :].numpy()
    else:
        window = np.ones(shape)
        mask = missing_wedge_mask(shape, *tilt_range)[:, :1, :].numpy()
    mask = mask.astype(np.float64)

    def energy(v: np.ndarray) -> float:
        f = np.fft.rfftn(window * v)
        return float((mask * (f.real**2 + f.imag**2)).sum())

    p1, p2 = (np.asarray(p, dtype=np.float64) for p in (pred1, pred2))
    h1, h2 = (np.asarray(h, dtype=np.float64) for h in (half1, half2))
    errors = np.zeros(len(sigmas))
    for i, s in enumerate(sigmas):
        q1, q2 = (gaussian_filter(p, s, mode="nearest", truncate=TRUNCATE) if s > 0 else p
                  for p in (p1, p2))  # fmt: skip
        # each half's prediction against the other half, less the extra noise of a
        # prediction from one half over a prediction from their mean (see the module)
        errors[i] = energy(q1 - h2) + energy(q2 - h1) - 0.5 * energy(q1 - q2)
    return errors


def choose_half_set_blur(
    model: LoadedModel,
    half1: np.ndarray,
    half2: np.ndarray,
    options: PredictOptions | None = None,
    *,
    edge: int = CV_EDGE,
    sigmas: Sequence[float] = BLUR_SIGMAS,
) -> BlurChoice:
    """Predict the central region (at most ``edge`` voxels per axis) of each half-set with
    ``options`` (one deterministic pass, no ``keep_measured``, no blur) and choose the blur
    of least cross-validation error between them (:func:`half_set_blur_errors`).

    ``half1``, ``half2``: ``(z, y, x)`` arrays or memory maps of the same shape, with the
    missing wedge of ``options.tilt_range`` (else the model's).
    """
    options = options or PredictOptions()
    a, b = as_array(half1), as_array(half2)
    if a.ndim != 3 or tuple(a.shape) != tuple(b.shape):
        raise InputError(
            f"the half-sets must be volumes of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    tilt = model.check_tilt_range(*(options.tilt_range or (None, None)))
    region = central_region(a.shape, edge)
    cut_out = any(s.stop - s.start < n for s, n in zip(region, a.shape, strict=True))
    once = replace(options, samples=1, keep_measured=False, blur=0.0)
    ra, rb = (read_bounded(v[region]) for v in (a, b))
    release(a, b)
    pa, pb = (predict_volume(model, r, once) for r in (ra, rb))
    errors = half_set_blur_errors(pa, pb, ra, rb, tilt, cut_out=cut_out, sigmas=sigmas)
    return BlurChoice.from_errors(errors, sigmas, pa.shape)
