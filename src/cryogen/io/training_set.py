"""The volumes a model trains on: each tomogram, its tilt range, mask and half-sets.

- :func:`tilt_ranges`: the tilt range of every tomogram, and where it comes from (given,
  its STAR row, its tilt-angle file, or, recorded nowhere, the default, said loudly).
- :func:`shared_tilt_range`: the one range of a set that must share one.
- :func:`load_tomograms`: the volumes (deconvolved ones where the STAR file lists them),
  masks, half-sets, voxel size and tilt ranges, in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryogen.errors import InputError
from cryogen.io.half_set_check import VOXEL_TOLERANCE, HalfSetHeader, check_half_sets
from cryogen.io.mrc import read_volume
from cryogen.io.sources import TomogramSource, tomogram_file

__all__ = [
    "DEFAULT_TILT_RANGE",
    "LoadedTomograms",
    "TiltRange",
    "load_tomograms",
    "shared_tilt_range",
    "tilt_ranges",
]

logger = logging.getLogger(__name__)

#: The tilt range of a tomogram that records none anywhere (degrees): the common +-60.
DEFAULT_TILT_RANGE = (-60.0, 60.0)


@dataclass(frozen=True)
class TiltRange:
    """The tilt range of one tomogram.

    Attributes
    ----------
    tilt_min, tilt_max : float
        Degrees.
    source : str
        Where it comes from: ``"given"``, a tilt-angle file, STAR columns, or ``"default"``.
    default : bool
        At least one end was recorded nowhere and is the default's.
    """

    tilt_min: float
    tilt_max: float
    source: str
    default: bool = False

    def __str__(self) -> str:
        return f"{self.tilt_min:+g}/{self.tilt_max:+g} deg ({self.source})"


def tilt_ranges(
    sources: Sequence[TomogramSource],
    *,
    tilt_min: float | None = None,
    tilt_max: float | None = None,
    default: tuple[float, float] = DEFAULT_TILT_RANGE,
) -> list[TiltRange]:
    """The tilt range of each tomogram: ``tilt_min``/``tilt_max`` where given, else its
    source's (STAR row, tilt-angle file), else ``default`` (``TiltRange.default`` set).

    Raises
    ------
    InputError
        A tomogram's ``tilt_min`` is not below its ``tilt_max``.
    """
    out = []
    for s in sources:
        t0 = tilt_min if tilt_min is not None else s.tilt_min
        t1 = tilt_max if tilt_max is not None else s.tilt_max
        parts = []
        if tilt_min is not None or tilt_max is not None:
            parts.append("given")
        if (tilt_min is None and s.tilt_min is not None) or (
            tilt_max is None and s.tilt_max is not None
        ):
            parts.append(s.tilt_source or "recorded")
        missing = t0 is None or t1 is None
        if missing:
            parts.append("default: recorded nowhere")
        t0 = default[0] if t0 is None else t0
        t1 = default[1] if t1 is None else t1
        for name, t in (("tilt_min", t0), ("tilt_max", t1)):
            if not -90.0 <= t <= 90.0:
                raise InputError(f"{s.where}: {name} {t:g} is outside [-90, 90] degrees")
        if t0 >= t1:
            raise InputError(
                f"{s.where}: tilt_min {t0:g} must be smaller than tilt_max {t1:g} degrees"
            )
        out.append(TiltRange(float(t0), float(t1), ", ".join(parts), missing))
    return out


def shared_tilt_range(ranges: Sequence[TiltRange]) -> tuple[float, float]:
    """The one tilt range of ``ranges``.

    Raises
    ------
    InputError
        The tomograms have different tilt ranges.
    """
    distinct = sorted({(r.tilt_min, r.tilt_max) for r in ranges})
    if len(distinct) > 1:
        shown = ", ".join(f"{a:g}/{b:g}" for a, b in distinct)
        raise InputError(
            f"the tomograms have different tilt ranges ({shown}); one model is trained per "
            "tilt range (split the tomograms, or give tilt_min and tilt_max for all)"
        )
    return distinct[0]


@dataclass(frozen=True)
class LoadedTomograms:
    """The volumes of a training set, in memory.

    Attributes
    ----------
    volumes : list of numpy.ndarray
        ``(z, y, x)`` each, beam along ``z``.
    masks : list of (numpy.ndarray or None), or None
        One per volume (``None``: that volume has none), or ``None`` when none has one.
    voxel_size : float
        Å, the first volume's.
    halves : list of (numpy.ndarray, numpy.ndarray), or None
        Each volume's two half-sets (same shape and voxel size), or ``None`` without.
    tilts : list of TiltRange
        Each volume's tilt range and where it comes from.
    files : list of str
        What each volume was read from (for messages and logs).
    """

    volumes: list[np.ndarray]
    masks: list[np.ndarray | None] | None
    voxel_size: float
    halves: list[tuple[np.ndarray, np.ndarray]] | None = None
    tilts: list[TiltRange] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def tilt_ranges(self) -> list[tuple[float, float]]:
        """``(tilt_min, tilt_max)`` of each volume, degrees."""
        return [(t.tilt_min, t.tilt_max) for t in self.tilts]


def _read(path: Path, beam_axis: str, pixel_size: float | None) -> tuple[np.ndarray, float]:
    vol = read_volume(path, beam_axis=beam_axis, pixel_size=pixel_size)
    return vol.load(), float(vol.voxel_size)


@dataclass(frozen=True)
class _HalfSets:
    """The two half-sets of a tomogram as read."""

    a: np.ndarray
    b: np.ndarray
    voxel_a: float
    voxel_b: float

    def check(
        self, source: TomogramSource, shape: tuple[int, ...], voxel: float, tilt: TiltRange
    ) -> None:
        """One-line errors for half-sets that do not match each other or their tomogram."""
        assert source.half1 is not None and source.half2 is not None
        check_half_sets(
            source.where,
            [
                HalfSetHeader(source.half1, self.a.shape, self.voxel_a),
                HalfSetHeader(source.half2, self.b.shape, self.voxel_b),
            ],
            shape,
            voxel,
            None if tilt.default else (tilt.tilt_min, tilt.tilt_max),
        )


def _halves_of(source: TomogramSource, beam_axis: str, pixel_size: float | None) -> _HalfSets:
    """The two half-sets of a tomogram, in memory."""
    assert source.half1 is not None and source.half2 is not None
    a, va = _read(source.half1, beam_axis, pixel_size)
    b, vb = _read(source.half2, beam_axis, pixel_size)
    if a.shape != b.shape:
        raise InputError(
            f"{source.half1} has shape {a.shape}, its other half-set {source.half2} "
            f"{b.shape}; the half-sets must have one shape"
        )
    return _HalfSets(a, b, va, vb)


def _volume_of(
    s: TomogramSource, beam_axis: str, pixel_size: float | None, deconvolved: bool
) -> tuple[np.ndarray, float, str]:
    """A tomogram's volume, voxel size and a label of what it was read from."""
    px = pixel_size if pixel_size is not None else s.pixel_size
    with_halves = s.half1 is not None
    path = tomogram_file(s, deconvolved=deconvolved and not with_halves)
    vol, voxel = _read(path, beam_axis, px)
    label = str(path)
    if path != s.path:
        label += " (rlnDeconvTomoName)"
    elif deconvolved and with_halves and s.entry is not None and s.entry.deconv_path is not None:
        label += " (with half-sets: rlnDeconvTomoName not used)"
    return vol, voxel, label


def load_tomograms(
    sources: Sequence[TomogramSource],
    *,
    beam_axis: str = "z",
    pixel_size: float | None = None,
    deconvolved: bool = False,
    tilt_min: float | None = None,
    tilt_max: float | None = None,
) -> LoadedTomograms:
    """Read the tomograms, their masks and half-sets into memory.

    Every volume is read with ``pixel_size`` when given, else its source's (the STAR
    file's), else its header's; a voxel size that differs from the first volume's is
    logged as a warning.  Masks are read with the first volume's voxel size.  With
    ``deconvolved``, a STAR row's ``rlnDeconvTomoName`` is read instead of its tomogram
    where it exists (not with half-sets, which are not deconvolved).  A tomogram given only
    by its half-sets is their mean.  Tilt ranges as :func:`tilt_ranges`.

    Raises
    ------
    InputError
        An unreadable volume; half-sets for some tomograms only; half-sets of another
        shape, voxel size or tilt range than each other or their tomogram.
    """
    with_halves = [s.half1 is not None and s.half2 is not None for s in sources]
    if any(with_halves) and not all(with_halves):
        lacking = next(s.where for s, h in zip(sources, with_halves, strict=True) if not h)
        raise InputError(f"{lacking} has no half-sets; give them for every tomogram or none")
    tilts = tilt_ranges(sources, tilt_min=tilt_min, tilt_max=tilt_max)
    vols, voxels, files, halves = [], [], [], []
    for s, tilt in zip(sources, tilts, strict=True):
        px = pixel_size if pixel_size is not None else s.pixel_size
        pair = _halves_of(s, beam_axis, px) if s.half1 is not None else None
        if s.from_halves and pair is not None:
            vol, voxel, label = (pair.a + pair.b) / np.float32(2), pair.voxel_a, s.where
        else:
            vol, voxel, label = _volume_of(s, beam_axis, pixel_size, deconvolved)
        if pair is not None:
            pair.check(s, vol.shape, voxel, tilt)
            halves.append((pair.a, pair.b))
        vols.append(vol.astype(np.float32, copy=False))
        voxels.append(voxel)
        files.append(label)
    voxel = voxels[0]
    for v, s in zip(voxels[1:], sources[1:], strict=True):
        if abs(v - voxel) > VOXEL_TOLERANCE * voxel:
            logger.warning(
                "%s: voxel size %.4g Å differs from the first tomogram's %.4g Å", s.path, v, voxel
            )
    masks = None
    if any(s.mask is not None for s in sources):
        masks = [
            None
            if s.mask is None
            else read_volume(
                s.mask, beam_axis=beam_axis, pixel_size=voxel, check_values=False
            ).load()
            for s in sources
        ]
    return LoadedTomograms(vols, masks, voxel, halves or None, tilts, files)
