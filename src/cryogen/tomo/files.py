"""Tomogram files in, tomogram files out: the steps from a tilt series to a training set.

- :func:`read_tilt_series`: an aligned tilt series and its angles (IMOD ``.tlt``),
  optionally binned, ready for :func:`cryogen.tomo.reconstruct_wbp`.
- :func:`deconvolve_file`: IsoNet's CTF deconvolution of an MRC tomogram, chunk by chunk.
- :func:`mask_file`: the IsoNet-style sampling mask of an MRC tomogram.

Inputs are memory-mapped and outputs written atomically (an existing output is refused
unless ``overwrite``), so tomograms larger than memory pass through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryogen.errors import InputError
from cryogen.io import create_volume_memmap, read_tlt, read_volume, write_volume
from cryogen.tomo.bin import bin_factor_for, binned_shape, fourier_crop
from cryogen.tomo.ctf import CTFParams, deconvolve_chunked
from cryogen.tomo.mask import make_mask

__all__ = ["TiltSeries", "deconvolve_file", "mask_file", "read_tilt_series"]


@dataclass(frozen=True)
class TiltSeries:
    """An aligned tilt series to reconstruct.

    Attributes
    ----------
    path : Path
        The tilt series' file.
    images : array
        ``(n_tilts, y, x)``, tilt axis along ``y``: the file's memory map, or the binned
        images in memory.
    angles : numpy.ndarray
        ``(n_tilts,)`` degrees.
    pixel_size : float
        Å, of ``images`` (binning included).
    bin_factor : float
        The binning applied to the file's images (1: none).
    """

    path: Path
    images: Any
    angles: np.ndarray
    pixel_size: float
    bin_factor: float = 1.0

    def every_other(self, which: str) -> TiltSeries:
        """The images of the even (0, 2, 4, ... in tilt order) or the odd (1, 3, 5, ...)
        tilts: half-sets for data recorded without frames.

        The two halves have independent noise, but each has twice the tilt increment (more
        streaks, and a back-projection that resolves less), and their streaks differ, so
        they are not the same signal with independent noise as even/odd frames are.

        Raises
        ------
        InputError
            ``which`` not ``"even"`` or ``"odd"``, or fewer than 4 tilts.
        """
        if which not in ("even", "odd"):
            raise InputError(f"tilts must be 'even' or 'odd', got {which!r}")
        if len(self.angles) < 4:
            raise InputError(f"{self.path}: {len(self.angles)} tilts are too few to split")
        order = np.argsort(self.angles, kind="stable")
        keep = np.sort(order[(0 if which == "even" else 1) :: 2])
        images: Any
        if isinstance(self.images, torch.Tensor):
            images = self.images[torch.as_tensor(keep, device=self.images.device)]
        else:
            images = np.asarray(self.images[keep])  # a memory map: these images, read
        return replace(self, images=images, angles=self.angles[keep])

    def tomogram_shape(self, thickness: int | None = None) -> tuple[int, int, int]:
        """``(z, y, x)`` of its tomogram; ``thickness`` in pixels of the file's images
        (divided by the binning), default the image width (a cube).

        Raises
        ------
        InputError
            Images narrower than 2 pixels.
        """
        _, ny, nx = (int(n) for n in self.images.shape)
        nz = nx if thickness is None else max(1, int(round(thickness / self.bin_factor)))
        if nx < 2:
            raise InputError(f"{self.path}: images of width {nx} cannot be reconstructed")
        return nz, ny, nx


def read_tilt_series(
    path: str | os.PathLike[str],
    tlt: str | os.PathLike[str],
    *,
    pixel_size: float | None = None,
    bin_factor: float = 1.0,
    target_pixel_size: float | None = None,
    device: torch.device | str = "cpu",
) -> TiltSeries:
    """Read a tilt series (MRC stack) and its angles, binning the images by Fourier cropping.

    Parameters
    ----------
    path
        MRC stack, images ``(n_tilts, y, x)``.
    tlt
        IMOD ``.tlt`` file, one angle per image.
    pixel_size
        Å, instead of the header's.
    bin_factor
        Binning (>= 1), or ``target_pixel_size``: the pixel size in Å to bin to.
    device
        Where the images are binned.

    Raises
    ------
    InputError
        Unreadable files, as many angles as images not given, both ``bin_factor`` and
        ``target_pixel_size``, a target pixel size smaller than the data's.
    """
    angles = read_tlt(tlt)
    series = read_volume(path, pixel_size=pixel_size)
    n_tilts, ny, nx = series.shape
    if len(angles) != n_tilts:
        raise InputError(f"{tlt}: {len(angles)} tilt angles for the {n_tilts} images of {path}")
    if target_pixel_size is not None:
        if bin_factor != 1.0:
            raise InputError("give either bin_factor or target_pixel_size, not both")
        try:
            bin_factor = bin_factor_for(series.voxel_size, target_pixel_size)
        except ValueError as err:
            raise InputError(str(err)) from None
    if not bin_factor > 1.0:
        return TiltSeries(Path(path), series.data, angles, series.voxel_size, bin_factor)
    my, mx = binned_shape((ny, nx), bin_factor)
    binned = np.empty((n_tilts, my, mx), dtype=np.float32)
    for i in range(n_tilts):
        img = torch.from_numpy(np.array(series.data[i], dtype=np.float32)).to(device)
        binned[i] = fourier_crop(img, (my, mx)).cpu().numpy()
    return TiltSeries(Path(path), binned, angles, series.voxel_size * nx / mx, bin_factor)


def deconvolve_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    params: CTFParams,
    *,
    pixel_size: float | None = None,
    device: torch.device | str = "cpu",
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Deconvolve an MRC tomogram into ``out`` (same shape, voxel size and origin).

    Parameters
    ----------
    params
        The CTF (:func:`cryogen.tomo.microscope.tomogram_ctf`).
    pixel_size
        Å, instead of the header's.
    options
        Of :func:`cryogen.tomo.deconvolve_chunked`: ``snrfalloff``, ``deconvstrength``,
        ``highpassnyquist``, ``phaseflipped``, ``chunk_size``, ``overlap``.

    Returns
    -------
    Path
        ``out``.
    """
    vol = read_volume(src, pixel_size=pixel_size)
    with create_volume_memmap(
        out, vol.shape, voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
    ) as mm:
        deconvolve_chunked(vol.data, mm, vol.voxel_size, params, device=device, **options)
    return Path(out)


def mask_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    overwrite: bool = False,
    **options: Any,
) -> float:
    """Write the sampling mask of an MRC tomogram (``uint8``, same voxel size and origin).

    Parameters
    ----------
    options
        Of :func:`cryogen.tomo.make_mask`: ``density_percentage``, ``std_percentage``,
        ``z_crop``, ``patch_size``, ``protein``.

    Returns
    -------
    float
        The fraction of the tomogram the mask covers (0: empty).
    """
    vol = read_volume(src)
    mask = make_mask(vol.data, device=device, **options)
    cover = float(mask.float().mean())
    write_volume(
        out, mask.cpu().numpy(), voxel_size=vol.voxel_size, origin=vol.origin, overwrite=overwrite
    )
    return cover
