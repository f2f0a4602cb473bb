"""The microscope parameters of a tomogram: defocus units and the CTF its deconvolution uses.

A tomogram's CTF comes from, in this order: the values the caller gives, its STAR row
(``rlnDefocus`` in Å, ``rlnVoltage``, ``rlnSphericalAberration``, ``rlnAmplitudeContrast``),
the defaults of :class:`~cryogen.tomo.ctf.CTFParams` (300 kV, 2.7 mm, 0.07).  Users give the
defocus in µm (``defocus_um``); the library works in Å.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cryogen.errors import InputError
from cryogen.tomo.ctf import CTFParams

if TYPE_CHECKING:
    from cryogen.io.inputs import TomogramSource

__all__ = ["ANGSTROM_PER_UM", "MAX_DEFOCUS_UM", "defocus_angstrom", "tomogram_ctf"]

#: Larger defoci in µm are taken for values given in Å by mistake.
MAX_DEFOCUS_UM = 50.0
#: Å in a µm (defoci are given in µm and computed with in Å).
ANGSTROM_PER_UM = 1e4


def defocus_angstrom(defocus_um: float) -> float:
    """A defocus in µm (underfocus positive) in Å, refusing values that look like Å already.

    Raises
    ------
    InputError
        ``defocus_um`` is negative, not finite, or above :data:`MAX_DEFOCUS_UM`.
    """
    if not math.isfinite(defocus_um) or defocus_um < 0:
        raise InputError(
            f"defocus_um must be a defocus >= 0 in µm (underfocus), got {defocus_um:g}"
        )
    if defocus_um > MAX_DEFOCUS_UM:
        raise InputError(
            f"defocus_um {defocus_um:g} µm is not a plausible defocus; give it in µm "
            f"(e.g. 3.5, not 35000 Å)"
        )
    return defocus_um * ANGSTROM_PER_UM


def _first(*values: float | None) -> float:
    """The first value that is not ``None``, as a float."""
    return float(next(v for v in values if v is not None))


def tomogram_ctf(
    source: TomogramSource,
    *,
    defocus_um: float | None = None,
    voltage: float | None = None,
    cs: float | None = None,
    amplitude_contrast: float | None = None,
    phase_shift: float = 0.0,
) -> CTFParams:
    """The CTF of a tomogram, for its deconvolution.

    Parameters
    ----------
    source
        The tomogram: a file (then ``defocus_um`` is needed) or a STAR row.
    defocus_um
        µm underfocus; for a STAR row, instead of its ``rlnDefocus`` (Å).
    voltage, cs, amplitude_contrast
        kV, mm, fraction; ``None``: the STAR row's, else the default of ``CTFParams``.
    phase_shift
        Degrees (phase plate).

    Raises
    ------
    InputError
        No defocus at all; a STAR row whose defocus is not positive (a phase-plate or
        CTF-corrected tomogram needs no deconvolution); values ``CTFParams`` refuses.
    """
    entry = source.entry
    where = source.where if entry is None else f"{source.where} ({entry.name})"
    if entry is None:
        if defocus_um is None:
            raise InputError(f"{where}: give the defocus with defocus_um (µm)")
        defocus = defocus_angstrom(defocus_um)
    else:
        if defocus_um is not None:
            defocus = defocus_angstrom(defocus_um)
        elif entry.defocus is not None:
            defocus = float(entry.defocus)
        else:
            raise InputError(f"{where}: no rlnDefocus; fill the column (Å) or give defocus_um (µm)")
        if not defocus > 0:
            raise InputError(
                f"{where}: rlnDefocus is {defocus:g} Å; a deconvolution needs the defocus "
                "(phase-plate or CTF-corrected data need no deconvolution)"
            )
    row = (
        (None, None, None) if entry is None else (entry.voltage, entry.cs, entry.amplitude_contrast)
    )
    try:
        return CTFParams(
            defocus=defocus,
            voltage=_first(voltage, row[0], CTFParams.voltage),
            cs=_first(cs, row[1], CTFParams.cs),
            amplitude_contrast=_first(amplitude_contrast, row[2], CTFParams.amplitude_contrast),
            phase_shift=phase_shift,
        )
    except ValueError as err:
        raise InputError(f"{where}: {err}") from None
