"""Image-quality metrics for restored tomograms (appendix A.3.1 of the paper and beyond).

Every function takes numpy arrays or torch tensors (any device, any real dtype), computes in
float64 with numpy and returns Python floats or numpy arrays.  Volumes are indexed
``(z, y, x)`` (``shared/CONVENTIONS.md``): the beam runs along ``z``, the tilt axis is ``y``
and the missing wedge lies around the ``kz`` axis.

Metrics
-------
``psnr``
    ``10 log10(max(gt)^2 / mean((pred - gt)^2))``: the paper's definition, with the peak
    taken as the maximum of the ground truth (not the data range).
``ssim_global``
    The paper's SSIM: one window over the whole volume, population (biased) variances,
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = max(gt) - min(gt)``.
``ssim_windowed``
    The usual SSIM of Wang et al. (2004) as scikit-image computes it by default: a uniform
    ``win_size^d`` window, sample covariances, averaged over the region at least
    ``(win_size - 1) // 2`` voxels from every border.  Implemented here with cumulative
    sums (no scikit-image or scipy at run time); it agrees with
    ``skimage.metrics.structural_similarity(gt, pred, data_range=L)``.
``fsc`` / ``conical_fsc`` / ``resolution``
    Fourier shell correlation over spherical shells one Fourier pixel wide, optionally
    restricted to a double cone around ``kz``, ``ky`` or ``kx``.  Comparing a restored
    volume with a known reference, the resolution is read at the FSC = 0.5 criterion.
    ``res_z`` versus ``res_x`` (cones around ``kz`` and ``kx``) measures isotropy directly:
    a wedge-corrupted volume has no signal in the ``kz`` cone.
``wedge_correlation``
    Normalised cross-correlation of prediction and truth restricted to the missing wedge in
    Fourier space: 0 for the wedge-corrupted input, 1 for a perfect restoration.
``evaluate``
    All of the above in one dictionary, after an optional least-squares fit
    ``a * pred + b`` of the prediction to the truth's scale (networks work on normalised
    densities; every table must say whether the fit was applied).

:data:`METRICS` lists every score of ``evaluate`` with its label, description, direction
and format, in the order tables print them.  Modules: ``registry`` (``METRICS``),
``pixel`` (real space), ``fourier`` (Fourier space), ``evaluate``, ``arrays`` (input checks).

Memory: every function makes float64 copies of its inputs.  ``ssim_windowed`` works in
slabs along the first axis, so it needs only a few extra copies of a slab; the Fourier
metrics hold two complex half spectra plus a few real half-spectrum-sized arrays, about
ten float64 copies of the volume at peak (roughly 1.5 GB for a 256^3 volume).
"""

from cryogen.metrics.evaluate import evaluate
from cryogen.metrics.fourier import (
    FSC_REFERENCE_THRESHOLD,
    NEGLIGIBLE_POWER,
    conical_fsc,
    fsc,
    resolution,
    wedge_correlation,
)
from cryogen.metrics.pixel import apply_scale_fit, psnr, scale_fit, ssim_global, ssim_windowed
from cryogen.metrics.registry import METRIC_DESCRIPTIONS, METRICS, Metric

__all__ = [
    "METRICS",
    "METRIC_DESCRIPTIONS",
    "Metric",
    "FSC_REFERENCE_THRESHOLD",
    "NEGLIGIBLE_POWER",
    "psnr",
    "ssim_global",
    "ssim_windowed",
    "scale_fit",
    "apply_scale_fit",
    "fsc",
    "conical_fsc",
    "resolution",
    "wedge_correlation",
    "evaluate",
]
