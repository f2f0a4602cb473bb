"""Figures people look at: orthogonal slices and central Fourier slices of volumes.

Everything renders with Matplotlib's Agg backend (no display needed) and returns the path
of the written PNG.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "central_fourier_slices",
    "is_std_map",
    "loss_curve_figure",
    "ortho_and_fourier_figure",
    "wedge_power",
]

#: Largest cube (per axis) whose Fourier transform is computed for the Fourier panels.
FOURIER_CROP = 256


def agg_pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_png: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically (``cryogen.io.atomic_output``: a crash never
    leaves half a figure) and close it."""
    import matplotlib.pyplot as plt

    from cryogen.io import atomic_output

    out = Path(out_png)
    try:
        with atomic_output(out, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return out


def _centre_crop(vol: np.ndarray, size: int) -> np.ndarray:
    sl = []
    for n in vol.shape:
        s = min(n, size)
        start = (n - s) // 2
        sl.append(slice(start, start + s))
    return np.asarray(vol[tuple(sl)], dtype=np.float32)


def central_fourier_slices(vol: np.ndarray, crop: int = FOURIER_CROP) -> dict[str, np.ndarray]:
    """Log-amplitude of the central ``kx-ky``, ``kx-kz`` and ``ky-kz`` Fourier planes.

    Parameters
    ----------
    vol
        ``(z, y, x)`` volume; a centred crop of at most ``crop`` voxels per axis is used so
        that huge tomograms stay cheap.

    Returns
    -------
    dict
        ``"xy"`` ``(ky, kx)``, ``"xz"`` ``(kz, kx)`` and ``"yz"`` ``(kz, ky)`` arrays, DC at the
        centre.
    """
    v = _centre_crop(vol, crop).astype(np.float64)
    v = v - v.mean()
    f = np.fft.fftshift(np.fft.fftn(v))
    amp = np.log1p(np.abs(f))
    cz, cy, cx = (n // 2 for n in amp.shape)
    return {"xy": amp[cz], "xz": amp[:, cy, :], "yz": amp[:, :, cx]}


#: Real-space contrast of a panel: these percentiles of its volume's central slices.
CONTRAST_PERCENTILES = (1.0, 99.0)
#: Colour maps: densities in grey, a standard deviation map (``--samples``) in its own,
#: Fourier log-amplitudes in a third.
DENSITY_CMAP, STD_CMAP, FOURIER_CMAP = "gray", "viridis", "magma"
_ROWS = ("XY", "XZ", "YZ", "F(kx,ky)", "F(kx,kz)", "F(ky,kz)")


def is_std_map(name: str | os.PathLike) -> bool:
    """Whether a file is a standard deviation map (``cryogen predict --samples`` writes
    ``OUT_std.mrc``)."""
    return Path(name).stem.lower().endswith("_std")


def _robust_range(arrays: Sequence[np.ndarray], low: float, high: float) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _central_slices(v: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """The central XY, XZ, YZ slices and where they are (``"z = 70 of 140"``)."""
    nz, ny, nx = v.shape
    slices = [v[nz // 2], v[:, ny // 2, :], v[:, :, nx // 2]]
    where = [f"z = {nz // 2} of {nz}", f"y = {ny // 2} of {ny}", f"x = {nx // 2} of {nx}"]
    return [np.asarray(p, dtype=np.float32) for p in slices], where


def _edges(n: int, voxel: float | None) -> tuple[float, float]:
    """The outer edges of ``n`` fftshifted frequency samples (centres ``(i - n // 2) / n``
    cycles per voxel), per Å when the voxel size is known."""
    scale = 1.0 / (voxel or 1.0)
    return (-(n // 2) - 0.5) / n * scale, (n - 1 - n // 2 + 0.5) / n * scale


def _wedge_lines(ax, tilt_range: tuple[float, float], kmax: float, label: str) -> None:
    """The edges of the measured region in the ``(kx, kz)`` plane: a tilt ``t`` measures
    the line ``kz = -tan(t) kx`` (conventions: the plane with normal ``(sin t, 0, cos t)``)."""
    k = np.array([-kmax, kmax])
    for i, t in enumerate(tilt_range):
        ax.plot(k, -np.tan(np.radians(t)) * k, color="cyan", lw=0.8, ls="--",
                label=label if i == 0 else None)  # fmt: skip
    ax.set_xlim(-kmax, kmax)
    ax.set_ylim(-kmax, kmax)


def _fourier_panels(axes, fig, v: np.ndarray, voxel: float | None, tilt, tilt_label: str) -> None:
    f = central_fourier_slices(v)
    lo, hi = _robust_range(list(f.values()), 5.0, 99.9)
    unit = "1/Å" if voxel else "cycles/voxel"
    for ax, key, (xl, yl) in zip(
        axes, ("xy", "xz", "yz"), (("kx", "ky"), ("kx", "kz"), ("ky", "kz")), strict=True
    ):
        plane = f[key]
        extent = (*_edges(plane.shape[1], voxel), *_edges(plane.shape[0], voxel))
        im = ax.imshow(plane, cmap=FOURIER_CMAP, vmin=lo, vmax=hi, origin="lower",
                       interpolation="nearest", extent=extent, aspect="auto")  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        ax.set_xlabel(f"{xl} ({unit})", fontsize=7)
        ax.set_ylabel(f"{yl}", fontsize=7)
        ax.tick_params(labelsize=6)
        if key == "xz" and tilt is not None:
            _wedge_lines(ax, tilt, 0.5 / (voxel or 1.0), tilt_label)
            ax.legend(loc="upper right", fontsize=6, framealpha=0.6)


def wedge_power(
    vol: np.ndarray, tilt_min: float, tilt_max: float, crop: int = FOURIER_CROP
) -> float:
    """The fraction of a volume's power (its mean removed) that lies in the missing wedge
    of ``[tilt_min, tilt_max]``: about 0 for a tomogram as reconstructed, larger once the
    wedge is filled.  A check that needs no ground truth (a centred crop of at most
    ``crop`` voxels per axis)."""
    import torch

    from cryogen.wedge import missing_wedge_mask

    v = torch.from_numpy(np.array(_centre_crop(vol, crop), dtype=np.float64))
    power = torch.fft.rfftn(v - v.mean()).abs().square()
    missing = 1.0 - missing_wedge_mask(v.shape, tilt_min, tilt_max, dtype=torch.float64)
    total = float(power.sum())
    return float((power * missing).sum()) / total if total > 0 else 0.0


def ortho_and_fourier_figure(
    volumes: Sequence[np.ndarray],
    titles: Sequence[str],
    out_png: str | os.PathLike,
    *,
    voxel_size: float | Sequence[float] | None = None,
    suptitle: str | None = None,
    std_maps: Sequence[bool] | None = None,
    tilt_range: tuple[float, float] | None = None,
    tilt_label: str | None = None,
) -> Path:
    """Central XY, XZ and YZ slices and the central Fourier slices, one column per volume.

    Rows: real-space XY (``z`` centre), XZ (``y`` centre; the beam runs vertically), YZ
    (``x`` centre), each labelled with its slice position, then the log-amplitude Fourier
    planes ``kx-ky``, ``kx-kz`` (where the missing wedge shows as an empty double wedge
    around ``kz``; the edges of ``tilt_range`` are drawn there when given) and ``ky-kz``, with
    frequency axes (1/Å when the voxel size is known).  Every panel has its own colour bar:
    each volume's contrast is its own (1st to 99th percentile of its central slices), so
    volumes of different scales all show.  A standard deviation map (``std_maps``, e.g. the
    ``--samples`` output of ``cryogen predict``) is drawn in its own colour map from 0,
    without Fourier panels.
    """
    if len(volumes) == 0:
        raise ValueError("need at least one volume")
    if len(titles) != len(volumes):
        raise ValueError(f"{len(volumes)} volumes but {len(titles)} titles")
    for v in volumes:
        if v.ndim != 3:
            raise ValueError(f"volumes must be (z, y, x), got shape {v.shape}")
    n = len(volumes)
    voxels = list(voxel_size) if isinstance(voxel_size, Sequence) else [voxel_size] * n
    stds = list(std_maps) if std_maps is not None else [False] * n
    label = tilt_label or (
        f"tilt range {tilt_range[0]:+g}/{tilt_range[1]:+g} deg" if tilt_range else ""
    )
    plt = agg_pyplot()
    fig, axes = plt.subplots(
        len(_ROWS), n, figsize=(3.4 * n + 0.8, 3.0 * len(_ROWS)), squeeze=False
    )
    for j, (v, title, voxel, std) in enumerate(zip(volumes, titles, voxels, stds, strict=True)):
        panels, where = _central_slices(v)
        lo, hi = _robust_range(panels[:2], *CONTRAST_PERCENTILES)
        if std:
            lo = 0.0
        for i, (panel, pos) in enumerate(zip(panels, where, strict=True)):
            ax = axes[i, j]
            im = ax.imshow(panel, cmap=STD_CMAP if std else DENSITY_CMAP, vmin=lo, vmax=hi,
                           origin="lower", interpolation="nearest")  # fmt: skip
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{_ROWS[i]}, {pos}", fontsize=7)
        if std:
            for ax in axes[3:, j]:
                ax.axis("off")
                ax.text(0.5, 0.5, "std map:\nno Fourier panels", ha="center", va="center",
                        fontsize=8, transform=ax.transAxes)  # fmt: skip
        else:
            _fourier_panels(axes[3:, j], fig, v, voxel, tilt_range, label)
        kind = " (std)" if std else ""
        axes[0, j].set_title(
            f"{title}{kind}" + (f"\nvoxel {voxel:g} Å" if voxel else ""), fontsize=9
        )
    for i, r in enumerate(_ROWS[:3]):
        axes[i, 0].set_ylabel(r, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.4 / (3.0 * len(_ROWS))))
    else:
        fig.tight_layout()
    out = save_figure(fig, out_png)
    logger.info("wrote %s", out)
    return out


def loss_curve_figure(
    columns: dict[str, Sequence[float]],
    steps: Sequence[int],
    out_png: str | os.PathLike,
    *,
    title: str = "training losses",
) -> Path:
    """One panel per loss term against the step, with a running median to read the trend."""
    plt = agg_pyplot()
    names = [k for k, v in columns.items() if len(v) == len(steps)]
    if not names:
        raise ValueError("no loss columns to plot")
    fig, axes = plt.subplots(
        len(names), 1, figsize=(7, 2.2 * len(names)), sharex=True, squeeze=False
    )
    s = np.asarray(steps)
    for ax, name in zip(axes[:, 0], names, strict=True):
        y = np.asarray(columns[name], dtype=np.float64)
        ax.plot(s, y, lw=0.6, alpha=0.5)
        k = max(1, len(y) // 50)
        if k > 1:
            pad = np.pad(y, (k // 2, k - 1 - k // 2), mode="edge")
            med = np.array([np.median(pad[i : i + k]) for i in range(len(y))])
            ax.plot(s, med, lw=1.5)
        ax.set_ylabel(name, fontsize=9)
        if np.all(y[np.isfinite(y)] > 0) and np.nanmax(y) / max(np.nanmin(y), 1e-30) > 100:
            ax.set_yscale("log")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    out = save_figure(fig, out_png)
    return out
