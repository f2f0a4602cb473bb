"""The CTF of a tomogram: defocus units, given values over its STAR row over the defaults."""

import math
from pathlib import Path

import pandas as pd
import pytest

from cryogen.errors import InputError
from cryogen.io import TomogramSource, tomogram_sources, write_star
from cryogen.tomo import CTFParams
from cryogen.tomo.microscope import ANGSTROM_PER_UM, defocus_angstrom, tomogram_ctf
from support import write_mrc


@pytest.mark.parametrize("um, angstrom", [(0.0, 0.0), (2.5, 25000.0), (50.0, 500000.0)])
def test_defocus_in_um_becomes_angstrom(um, angstrom):
    assert defocus_angstrom(um) == angstrom == um * ANGSTROM_PER_UM


@pytest.mark.parametrize(
    "um, needle", [(-1.0, ">= 0 in µm"), (math.nan, ">= 0 in µm"), (35000.0, "not a plausible")]
)
def test_implausible_defoci_name_the_parameter(um, needle):
    with pytest.raises(InputError, match=needle) as info:
        defocus_angstrom(um)
    assert str(info.value).startswith("defocus_um")


def star_sources(tmp_path, **row):
    write_mrc(tmp_path / "a.mrc", [[[0.0, 1.0], [2.0, 3.0]]] * 2)
    write_star(tmp_path / "t.star", pd.DataFrame([{"rlnTomoName": "a.mrc", **row}]))
    return tomogram_sources([tmp_path / "t.star"])[0]


def test_a_file_needs_the_defocus_and_takes_the_defaults():
    src = TomogramSource(path=Path("x.mrc"), where="x.mrc")
    with pytest.raises(InputError, match="x.mrc: give the defocus with defocus_um"):
        tomogram_ctf(src)
    params = tomogram_ctf(src, defocus_um=3.0, phase_shift=90.0)
    assert params == CTFParams(defocus=30000.0, phase_shift=90.0)
    assert (params.voltage, params.cs, params.amplitude_contrast) == (300.0, 2.7, 0.07)


def test_given_values_win_over_the_star_row(tmp_path):
    (src,) = star_sources(
        tmp_path,
        rlnDefocus=20000.0,
        rlnVoltage=200.0,
        rlnSphericalAberration=2.0,
        rlnAmplitudeContrast=0.1,
    )
    assert tomogram_ctf(src) == CTFParams(20000.0, 200.0, 2.0, 0.1)
    given = tomogram_ctf(src, defocus_um=1.5, voltage=300.0, cs=0.0, amplitude_contrast=0.2)
    assert given == CTFParams(15000.0, 300.0, 0.0, 0.2)


@pytest.mark.parametrize(
    "row, needle",
    [({}, "no rlnDefocus"), ({"rlnDefocus": 0.0}, "rlnDefocus is 0 Å")],
)
def test_a_star_row_without_a_positive_defocus_is_refused(tmp_path, row, needle):
    (src,) = star_sources(tmp_path, **row)
    with pytest.raises(InputError, match=needle) as info:
        tomogram_ctf(src)
    assert "t.star, row 1 (a.mrc)" in str(info.value)


def test_values_ctfparams_refuses_name_the_tomogram(tmp_path):
    (src,) = star_sources(tmp_path, rlnDefocus=20000.0, rlnAmplitudeContrast=1.5)
    with pytest.raises(InputError, match=r"row 1 \(a.mrc\): amplitude contrast"):
        tomogram_ctf(src)
