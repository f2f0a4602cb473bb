"""Whole-volume prediction with a trained generator (overlapping tiles, smooth blending).

``load_model`` (from :mod:`cryogen.model`) reads a checkpoint once (a run folder's
``last.pt``, or any ``checkpoints/step_NNNNNN.pt`` snapshot) and refuses one that does not
fit the request.  :class:`PredictOptions` holds how to predict (tiles, samples, ``tta``,
``keep_measured``) and is passed whole.

* :func:`predict_volume`: an array in, the prediction as a new array, in the input's
  intensity scale.
* :func:`predict_stream`: the same prediction between two arrays that may be memory maps,
  slab by slab along the longest axis, so that memory does not grow with the volume; with
  ``samples`` it also writes their per-voxel standard deviation.  Both are one path.
* :func:`predict_file`: an MRC file into a new MRC file (written under a temporary name and
  renamed when complete) with the input's voxel size and origin.
* :func:`keep_measured_fourier`: the measured Fourier components of a prediction replaced
  by the input's, exactly, in memory or out of core.
* :func:`plan_outputs`: the files a run over several tomograms or a STAR file writes.
"""

from cryogen.model import LoadedModel, load_model
from cryogen.predict.file import PredictionResult, predict_file
from cryogen.predict.keep_measured import keep_measured_fourier
from cryogen.predict.options import DEFAULT_MAX_MEMORY, PredictOptions
from cryogen.predict.plan import (
    CORRECTED_SUFFIX,
    STD_SUFFIX,
    Job,
    PredictionPlan,
    plan_outputs,
)
from cryogen.predict.volume import predict_stream, predict_volume, tta_rotations

__all__ = [
    "CORRECTED_SUFFIX",
    "DEFAULT_MAX_MEMORY",
    "STD_SUFFIX",
    "Job",
    "LoadedModel",
    "PredictOptions",
    "PredictionPlan",
    "PredictionResult",
    "keep_measured_fourier",
    "load_model",
    "plan_outputs",
    "predict_file",
    "predict_stream",
    "predict_volume",
    "tta_rotations",
]
