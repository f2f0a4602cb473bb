"""Half-set tomograms (even/odd frames or tilts) found by their names.

The programs that reconstruct half-sets name them in a few ways, all recognised here
(case-insensitive): ``TS_01_even.mrc`` / ``TS_01_odd.mrc`` (IMOD scripts, cryoCARE and
IsoNet2 tutorials), ``TS_01_EVN.mrc`` / ``TS_01_ODD.mrc`` and AreTomo3's
``TS_01_EVN_Vol.mrc`` / ``TS_01_ODD_Vol.mrc``, ``TS_01_half1.mrc`` / ``TS_01_half2.mrc``;
and Warp's folders ``even/TS_01.mrc`` / ``odd/TS_01.mrc`` beside ``TS_01.mrc``.  The
tomogram of the two is the file of the same name without the half-set's mark
(``TS_01.mrc``, ``TS_01_Vol.mrc``), when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryogen.errors import InputError

__all__ = ["TomogramFiles", "group_half_sets", "half_set_of"]

_HALF = re.compile(
    r"^(?P<base>.+?)[_.-](?P<half>even|evn|odd|half_?1|half_?2)(?P<rest>_vol)?$", re.IGNORECASE
)
_FIRST = {"even", "evn", "half1", "half_1"}


def half_set_of(path: str | Path) -> tuple[str, int] | None:
    """``(stem of the tomogram, 1 or 2)`` when ``path`` is named as a half-set, else
    ``None``: ``TS_01_EVN_Vol.mrc`` -> ``("TS_01_Vol", 1)``."""
    m = _HALF.match(Path(path).stem)
    if m is None:
        return None
    half = 1 if m.group("half").lower() in _FIRST else 2
    return m.group("base") + (m.group("rest") or ""), half


@dataclass(frozen=True)
class TomogramFiles:
    """A tomogram's files: the tomogram and its two half-sets, each ``None`` when absent
    (not both the tomogram and the half-sets)."""

    tomogram: Path | None
    half1: Path | None = None
    half2: Path | None = None

    @property
    def name(self) -> Path:
        """The tomogram, else its first half-set (for names and messages)."""
        return self.tomogram or self.half1  # type: ignore[return-value]


def _warp_halves(path: Path) -> tuple[Path, Path] | None:
    even, odd = path.parent / "even" / path.name, path.parent / "odd" / path.name
    return (even, odd) if even.is_file() and odd.is_file() else None


def group_half_sets(files: Sequence[Path]) -> list[TomogramFiles]:
    """The tomograms of ``files``, each with its half-sets found among them by name (or in
    Warp's ``even/`` and ``odd/`` folders beside it), in the order of ``files``.

    Raises
    ------
    InputError
        A half-set without its other half, or two files for the same half.
    """
    halves: dict[tuple[Path, str], dict[int, Path]] = {}
    order: list[tuple[Path, str]] = []
    plain: dict[tuple[Path, str], Path] = {}
    for f in files:
        found = half_set_of(f)
        key = (f.parent, (found[0] if found else f.stem).lower())
        if key not in order:
            order.append(key)
        if found is None:
            plain[key] = f
            continue
        slot = halves.setdefault(key, {})
        if found[1] in slot:
            other = slot[found[1]]
            raise InputError(f"{f} and {other} are both half-set {found[1]} of one tomogram")
        slot[found[1]] = f
    out = []
    for key in order:
        pair = halves.get(key, {})
        if len(pair) == 1:
            ((half, path),) = pair.items()
            raise InputError(f"{path}: half-set {half} without its other half in the same folder")
        tomogram = plain.get(key)
        if pair:
            out.append(TomogramFiles(tomogram, pair[1], pair[2]))
        elif tomogram is not None:
            warp = _warp_halves(tomogram)
            out.append(TomogramFiles(tomogram, *(warp or (None, None))))
    return out
