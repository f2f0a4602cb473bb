"""The 24 rotations of the cube as exact voxel permutations, and the paper's 20.

A rotation is stored as an axis permutation followed by flips of the last three dimensions
``(z, y, x)``: ``rotate(x, r) = x.permute(perm).flip(flipped axes)``.  Only proper rotations
(determinant +1) are kept, which gives the 24 symmetries of a cube.  They are exact (no
interpolation), keep device and dtype, work on any leading batch dimensions and are
differentiable.

``WEDGE_ROTATIONS`` holds the 20 the paper trains with (appendix A.2, after IsoNet): the 24
minus the identity and the 180-degree turns about ``x``, ``y`` and ``z``, which leave a
symmetric ``y``-tilt wedge unchanged.  (With an asymmetric tilt range the turns about ``x``
and ``z`` mirror the wedge; they are still excluded, as in the paper.)  Cube rotations map a
volume onto itself only when the rotated axes have equal sizes; crops fed to them are cubes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "CubeRotation",
    "CUBE_ROTATIONS",
    "WEDGE_ROTATIONS",
    "EXCLUDED_ROTATIONS",
    "rotate",
    "rotate_inverse",
    "rotate_box",
    "rotation_mean",
    "compose",
    "inverse",
]


@dataclass(frozen=True)
class CubeRotation:
    """A proper rotation of the cube as ``permute(perm)`` then ``flip`` of ``flips``.

    ``perm[i]`` is the input axis (0 = z, 1 = y, 2 = x) that becomes output axis ``i``;
    ``flips[i]`` reverses output axis ``i``.
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @property
    def matrix(self) -> tuple[tuple[int, int, int], ...]:
        """Signed permutation matrix acting on ``(z, y, x)`` coordinates (centred)."""
        rows: list[tuple[int, int, int]] = []
        for i in range(3):
            row = [0, 0, 0]
            row[self.perm[i]] = -1 if self.flips[i] else 1
            rows.append((row[0], row[1], row[2]))
        return tuple(rows)

    def apply(self, volume: torch.Tensor) -> torch.Tensor:
        if volume.ndim < 3:
            raise ValueError(f"volume must be (..., z, y, x), got shape {tuple(volume.shape)}")
        lead = list(range(volume.ndim - 3))
        off = volume.ndim - 3
        out = volume.permute(*lead, *(off + p for p in self.perm))
        dims = [off + i for i in range(3) if self.flips[i]]
        return out.flip(dims) if dims else out

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        return self.apply(volume)


def _perm_sign(p: tuple[int, ...]) -> int:
    sign = 1
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            if p[i] > p[j]:
                sign = -sign
    return sign


def _all_rotations() -> tuple[CubeRotation, ...]:
    rots = []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            if _perm_sign(perm) * (-1) ** sum(flips) == 1:
                rots.append(CubeRotation(perm, flips))  # type: ignore[arg-type]
    # identity first, a stable order after it
    rots.sort(key=lambda r: (r.perm != (0, 1, 2), r.perm, r.flips))
    return tuple(rots)


CUBE_ROTATIONS: tuple[CubeRotation, ...] = _all_rotations()

_PROBE = torch.arange(27).reshape(3, 3, 3)
_KEYS = {tuple(r.apply(_PROBE).flatten().tolist()): i for i, r in enumerate(CUBE_ROTATIONS)}


def _index_of(volume: torch.Tensor) -> int:
    return _KEYS[tuple(volume.flatten().tolist())]


def compose(a: int, b: int) -> int:
    """Index of the rotation ``a`` after ``b`` (apply ``b`` first, then ``a``)."""
    return _index_of(CUBE_ROTATIONS[a].apply(CUBE_ROTATIONS[b].apply(_PROBE)))


_INVERSE = tuple(
    next(j for j in range(24) if compose(j, i) == 0) for i in range(len(CUBE_ROTATIONS))
)


def inverse(index: int) -> int:
    """Index of the inverse rotation of ``CUBE_ROTATIONS[index]``."""
    return _INVERSE[index]


# identity and the three 180-degree turns (z: flips y and x; y: flips z and x; x: flips z and y)
_EXCLUDED = {
    CubeRotation((0, 1, 2), (False, False, False)),
    CubeRotation((0, 1, 2), (False, True, True)),
    CubeRotation((0, 1, 2), (True, False, True)),
    CubeRotation((0, 1, 2), (True, True, False)),
}
EXCLUDED_ROTATIONS: tuple[int, ...] = tuple(
    i for i, r in enumerate(CUBE_ROTATIONS) if r in _EXCLUDED
)
WEDGE_ROTATIONS: tuple[int, ...] = tuple(
    i for i, r in enumerate(CUBE_ROTATIONS) if r not in _EXCLUDED
)


def rotate(volume: torch.Tensor, index: int) -> torch.Tensor:
    """Apply ``CUBE_ROTATIONS[index]`` to the last three dimensions of ``volume``."""
    return CUBE_ROTATIONS[index].apply(volume)


def rotate_inverse(volume: torch.Tensor, index: int) -> torch.Tensor:
    """Apply the inverse of ``CUBE_ROTATIONS[index]`` (``R^-1``)."""
    return CUBE_ROTATIONS[_INVERSE[index]].apply(volume)


def rotate_box(
    origin: tuple[int, int, int], size: int, extent: int, index: int
) -> tuple[int, int, int]:
    """Where a box moves under a rotation of the cube that holds it.

    ``origin`` is the ``(z, y, x)`` corner of a box of edge ``size`` inside a cube of edge
    ``extent``; the result is its corner in ``rotate(cube, index)``, so that the box of the
    rotated cube there equals ``rotate(box, index)``.
    """
    if not all(0 <= o <= extent - size for o in origin):
        raise ValueError(f"box at {origin} of edge {size} is not inside a cube of {extent}")
    r = CUBE_ROTATIONS[index]
    return tuple(  # type: ignore[return-value]
        extent - size - origin[p] if f else origin[p] for p, f in zip(r.perm, r.flips, strict=True)
    )


def rotation_mean(
    fn: Callable[[torch.Tensor], torch.Tensor], volume: torch.Tensor, rotations: Sequence[int]
) -> torch.Tensor:
    """``mean_R R^-1 fn(R volume)`` over ``CUBE_ROTATIONS[r]`` for ``r`` in ``rotations``
    (cube volumes ``(..., n, n, n)``); ``fn(volume)`` itself for the identity alone.

    With the rotations that keep a missing wedge (:func:`cryogen.wedge.wedge_symmetries`)
    this is the test-time augmentation of prediction: the result turns with its input,
    ``rotation_mean(fn, R v) = R rotation_mean(fn, v)`` for every ``R`` of a group.
    """
    rotations = tuple(rotations)
    if not rotations:
        raise ValueError("rotation_mean needs at least one rotation")
    if rotations == (0,):
        return fn(volume)
    acc: torch.Tensor | None = None
    for i in rotations:
        out = rotate_inverse(fn(rotate(volume, i).contiguous()), i)
        acc = out if acc is None else acc + out
    assert acc is not None
    return acc / len(rotations)
