"""Half-sets against their tomogram: one check for training and prediction.

A tomogram's two half-sets (reconstructed from the even and the odd frames or tilts) must
have its shape, its voxel size and, where a half-set has its own tilt-angle file, its tilt
range.  :func:`check_half_sets` takes what a header says, so that ``cryogen predict`` can
refuse a wrong pair before any model loads, and training checks the volumes it read the
same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryogen.errors import InputError
from cryogen.io.sources import tilt_file_range
from cryogen.io.tlt import TILT_FILE_SUFFIXES

__all__ = ["VOXEL_TOLERANCE", "HalfSetHeader", "check_half_sets", "own_tilt_file"]

#: Relative difference of voxel sizes that counts as different.
VOXEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class HalfSetHeader:
    """What the check needs of one half-set: its file, shape and voxel size (Å)."""

    path: Path
    shape: tuple[int, ...]
    voxel_size: float


def own_tilt_file(path: Path) -> Path | None:
    """A tilt-angle file of exactly this file's name (a half-set's own angles)."""
    return next((p for p in (path.with_suffix(s) for s in TILT_FILE_SUFFIXES) if p.is_file()), None)


def check_half_sets(
    where: str,
    halves: Sequence[HalfSetHeader],
    shape: tuple[int, ...],
    voxel_size: float,
    tilt: tuple[float, float] | None,
) -> None:
    """Refuse half-sets that do not match their tomogram (``where`` names it).

    ``shape`` and ``voxel_size`` are the tomogram's; ``tilt`` its recorded tilt range in
    degrees (``None``: recorded nowhere, so a half-set's own tilt-angle file is not
    compared).

    Raises
    ------
    InputError
        One line naming the half-set and what differs.
    """
    for h in halves:
        if tuple(h.shape) != tuple(shape):
            raise InputError(
                f"{h.path}: shape {tuple(h.shape)}, its tomogram's ({where}) {tuple(shape)}; "
                "the half-sets must have their tomogram's shape"
            )
        if abs(h.voxel_size - voxel_size) > VOXEL_TOLERANCE * voxel_size:
            raise InputError(
                f"{h.path}: voxel size {h.voxel_size:.4g} Å, its tomogram's ({where}) "
                f"{voxel_size:.4g} Å; the half-sets must have their tomogram's voxel size"
            )
        own = own_tilt_file(h.path)
        if own is None or tilt is None:
            continue
        t0, t1 = tilt_file_range(own)
        if abs(t0 - tilt[0]) > 0.01 or abs(t1 - tilt[1]) > 0.01:
            raise InputError(
                f"{h.path}: tilt range {t0:g}/{t1:g} ({own.name}), its tomogram's "
                f"{tilt[0]:g}/{tilt[1]:g}; the half-sets must have their tomogram's "
                "missing wedge"
            )
