"""From the microscope to a training set: tilt series, reconstruction, CTF, masks.

- :mod:`cryogen.tomo.project`: forward projection and tilt-series simulation (CTF, noise).
- :mod:`cryogen.tomo.wbp`: weighted back-projection, chunked along the tilt axis.
- :mod:`cryogen.tomo.bin`: binning by Fourier cropping.
- :mod:`cryogen.tomo.ctf`: the CTF and IsoNet's deconvolution filter.
- :mod:`cryogen.tomo.mask`: IsoNet-style sampling masks.

All follow ``shared/CONVENTIONS.md``: ``(z, y, x)`` arrays, beam along ``z``, tilt axis
``y``, a tilt ``t`` samples the Fourier plane with normal ``(sin t, 0, cos t)``.
"""

from cryogen.tomo.bin import bin_factor_for, bin_volume, binned_shape, fourier_crop
from cryogen.tomo.ctf import (
    CTFParams,
    ctf,
    ctf_2d,
    deconvolve,
    deconvolve_chunked,
    electron_wavelength,
    wiener_filter,
    wiener_filter_3d,
)
from cryogen.tomo.mask import make_mask
from cryogen.tomo.project import (
    project,
    simulate_half_tilt_series,
    simulate_tilt_series,
    tilt_angles,
)
from cryogen.tomo.wbp import (
    backproject,
    iter_wbp_chunks,
    ramp_filter,
    reconstruct_wbp,
    tilt_weights,
    weight_projections,
)

__all__ = [
    "CTFParams",
    "backproject",
    "bin_factor_for",
    "bin_volume",
    "binned_shape",
    "ctf",
    "ctf_2d",
    "deconvolve",
    "deconvolve_chunked",
    "electron_wavelength",
    "fourier_crop",
    "iter_wbp_chunks",
    "make_mask",
    "project",
    "ramp_filter",
    "reconstruct_wbp",
    "simulate_half_tilt_series",
    "simulate_tilt_series",
    "tilt_angles",
    "tilt_weights",
    "weight_projections",
    "wiener_filter",
    "wiener_filter_3d",
]
