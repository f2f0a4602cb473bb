"""The scores :func:`~cryogen.metrics.evaluate` returns, as tables show them.

Adding a metric is one :class:`Metric` entry in :data:`METRICS` and its computation in
:func:`~cryogen.metrics.evaluate`; tables, "higher is better" and formats come from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["METRICS", "METRIC_DESCRIPTIONS", "Metric"]


@dataclass(frozen=True)
class Metric:
    """A score of :func:`evaluate`, as tables show it.

    Attributes
    ----------
    name : str
        The key in ``evaluate``'s result.
    label : str
        Column or row label, with units.
    description : str
        One line: what it measures, with units.
    higher_is_better : bool
    fmt : str
        Format of a value (``"{:.2f}"``).
    """

    name: str
    label: str
    description: str
    higher_is_better: bool
    fmt: str

    def format(self, value: Any) -> str:
        """``value`` as tables print it (``n/a`` for missing or non-finite)."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return self.fmt.format(value)


#: Every score ``evaluate`` returns, in the order tables print them.  Adding a metric is one
#: entry here and its computation in ``evaluate``.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "psnr",
            "PSNR (dB)",
            "PSNR, 10 log10(max(gt)^2 / MSE) over the whole volume (dB, higher is better)",
            True,
            "{:.2f}",
        ),
        Metric(
            "ssim_global",
            "SSIM global",
            "SSIM with one window over the whole volume, as in the paper (unitless, <= 1)",
            True,
            "{:.4f}",
        ),
        Metric(
            "ssim_windowed",
            "SSIM windowed",
            "mean SSIM over 7^3 uniform windows, as scikit-image (unitless, <= 1)",
            True,
            "{:.4f}",
        ),
        Metric(
            "wedge_corr",
            "wedge corr",
            "correlation with the truth inside the missing wedge in Fourier space "
            "(unitless, 0 for the corrupted input, 1 is perfect)",
            True,
            "{:.3f}",
        ),
        Metric(
            "res_z",
            "res_z (Å)",
            "resolution along z: FSC = 0.5 vs truth in a cone around kz (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "res_x",
            "res_x (Å)",
            "resolution along x: FSC = 0.5 vs truth in a cone around kx (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "fsc_res",
            "FSC res (Å)",
            "global resolution: FSC = 0.5 vs truth over full shells (Å, lower is better)",
            False,
            "{:.1f}",
        ),
        Metric(
            "mse",
            "MSE",
            "mean squared error after the optional scale fit (squared density units)",
            False,
            "{:.3g}",
        ),
    )
}

#: One-line description (with units) of every key ``evaluate`` returns, for tables: the
#: scores of :data:`METRICS`, then the settings they were computed with.
METRIC_DESCRIPTIONS: dict[str, str] = {
    **{m.name: m.description for m in METRICS.values()},
    "scale_fit": "whether pred was replaced by a * pred + b (least squares) before scoring",
    "scale": "slope a of the least-squares fit a * pred + b to gt (1 without the fit)",
    "offset": "offset b of the least-squares fit a * pred + b to gt (0 without the fit)",
    "voxel_size": "voxel size used to express resolutions (Å / voxel)",
    "tilt_min": "lowest tilt angle defining the missing wedge (degrees)",
    "tilt_max": "highest tilt angle defining the missing wedge (degrees)",
    "cone_half_angle": "half-angle of the double cones of the conical FSC (degrees)",
    "fsc_threshold": "FSC criterion used for the resolutions (unitless)",
}
