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

__all__ = ["ortho_and_fourier_figure", "central_fourier_slices", "loss_curve_figure"]

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


def ortho_and_fourier_figure(
    volumes: Sequence[np.ndarray],
    titles: Sequence[str],
    out_png: str | os.PathLike,
    *,
    voxel_size: float | None = None,
    suptitle: str | None = None,
) -> Path:
    """Central XY, XZ and YZ slices and the central Fourier slices, one column per volume.

    Rows: real-space XY (``z`` centre), XZ (``y`` centre; the beam runs vertically), YZ
    (``x`` centre), then the log-amplitude Fourier planes ``kx-ky``, ``kx-kz`` (where the
    missing wedge shows as an empty double wedge around ``kz``) and ``ky-kz``.  Real-space
    panels of all columns share one grey scale per row (1st to 99.9th percentile of the first
    volume) so differences in contrast are visible; Fourier panels share one colour scale.
    """
    if len(volumes) == 0:
        raise ValueError("need at least one volume")
    if len(titles) != len(volumes):
        raise ValueError(f"{len(volumes)} volumes but {len(titles)} titles")
    for v in volumes:
        if v.ndim != 3:
            raise ValueError(f"volumes must be (z, y, x), got shape {v.shape}")
    plt = agg_pyplot()
    n = len(volumes)
    rows = ["XY", "XZ", "YZ", "F(kx,ky)", "F(kx,kz)", "F(ky,kz)"]
    fig, axes = plt.subplots(len(rows), n, figsize=(3.0 * n + 0.6, 3.0 * len(rows)), squeeze=False)
    ref = volumes[0]
    ref_slice = np.concatenate(
        [
            np.asarray(ref[ref.shape[0] // 2]).ravel(),
            np.asarray(ref[:, ref.shape[1] // 2]).ravel(),
        ]
    )
    lo, hi = np.percentile(ref_slice, [1, 99.9])
    if hi <= lo:
        lo, hi = float(ref_slice.min()), float(ref_slice.max()) + 1e-6
    fourier = [central_fourier_slices(v) for v in volumes]
    flo = min(float(np.percentile(f[k], 5)) for f in fourier for k in f)
    fhi = max(float(np.percentile(f[k], 99.9)) for f in fourier for k in f)
    for j, (v, title) in enumerate(zip(volumes, titles, strict=True)):
        nz, ny, nx = v.shape
        panels = [
            np.asarray(v[nz // 2], dtype=np.float32),
            np.asarray(v[:, ny // 2, :], dtype=np.float32),
            np.asarray(v[:, :, nx // 2], dtype=np.float32),
        ]
        for i, p in enumerate(panels):
            axes[i, j].imshow(
                p, cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest"
            )
        for i, key in enumerate(["xy", "xz", "yz"]):
            axes[3 + i, j].imshow(
                fourier[j][key],
                cmap="magma",
                vmin=flo,
                vmax=fhi,
                origin="lower",
                interpolation="nearest",
            )
        axes[0, j].set_title(title, fontsize=10)
    for i, r in enumerate(rows):
        axes[i, 0].set_ylabel(r, fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle or voxel_size:
        text = suptitle or ""
        if voxel_size:
            text = (text + "  " if text else "") + f"voxel size {voxel_size:g} Å"
        fig.suptitle(text, fontsize=11)
        # keep ~0.4 inch above the column titles for the suptitle
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.4 / (3.0 * len(rows))))
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
