"""Tilt angles read from the data: IMOD .tlt and AreTomo .aln beside a tomogram, RELION-5
tilt-series STAR files, RELION-4 blocks, IsoNet2 columns; given values win."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryogen.errors import InputError
from cryogen.io import (
    find_tilt_file,
    read_aln,
    read_tilt_angles,
    tilt_series_angles,
    tomogram_sources,
    tomograms_from_star,
    write_star,
    write_tlt,
)
from cryogen.io.inputs import tilt_ranges
from support import write_mrc

ALN = """# AreTomo Alignment / Priism bprmMn
# RawSize = 64 64 6
# NumPatches = 0
# DarkFrame =     0    0   -63.00
# AlphaOffset =     0.00
# BetaOffset =     0.00
# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
    1    85.3000    1.00000    -12.345     6.789     1.00     1.00     1.00     0.00   -57.02
    2    85.3000    1.00000      1.000     2.000     1.00     1.00     1.00     0.00    -0.01
    3    85.3000    1.00000      3.000     4.000     1.00     1.00     1.00     0.00    59.98
# Local Alignment
    0    0   -1234.00  -456.00  1.0  2.0  1.0  3.0  4.0  5.0  99.0
"""


def vol():
    return np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)


def test_aretomo_aln_gives_the_refined_angles_without_dark_frames(tmp_path):
    path = tmp_path / "TS_01.aln"
    path.write_text(ALN)
    np.testing.assert_array_equal(read_aln(path), [-57.02, -0.01, 59.98])
    np.testing.assert_array_equal(read_tilt_angles(path), [-57.02, -0.01, 59.98])
    write_tlt(tmp_path / "TS_01.tlt", [-60.0, 0.0, 60.0])
    np.testing.assert_array_equal(read_tilt_angles(tmp_path / "TS_01.tlt"), [-60, 0, 60])


def test_a_broken_aln_names_the_line(tmp_path, one_line_error):
    path = tmp_path / "x.aln"
    path.write_text(ALN.replace("    2    85.3000", "    2    eighty"))
    with pytest.raises(InputError) as info:
        read_aln(path)
    one_line_error(info, "x.aln, line 9", "AreTomo")
    (tmp_path / "y.aln").write_text("# nothing here\n")
    with pytest.raises(InputError) as info:
        read_aln(tmp_path / "y.aln")
    one_line_error(info, "y.aln", "no AreTomo alignment table")


@pytest.mark.parametrize(
    "tomogram, angles_file",
    [
        ("TS_01.mrc", "TS_01.tlt"),
        ("TS_01_rec.mrc", "TS_01.tlt"),  # IMOD's reconstruction name
        ("TS_01_Vol.mrc", "TS_01.aln"),  # AreTomo3's
        ("TS_01_EVN_Vol.mrc", "TS_01.aln"),  # AreTomo3's half-set
        ("TS_01_even.mrc", "TS_01.tlt"),
    ],
)
def test_tilt_file_beside_the_tomogram(tmp_path, tomogram, angles_file):
    (tmp_path / angles_file).write_text(ALN if angles_file.endswith(".aln") else "-50\n0\n55\n")
    assert find_tilt_file(tmp_path / tomogram) == tmp_path / angles_file
    assert find_tilt_file(tmp_path / "other.mrc") is None


def test_mrc_files_take_their_tlt_given_or_found_and_say_where(tmp_path):
    a = write_mrc(tmp_path / "a.rec", vol())
    b = write_mrc(tmp_path / "b.rec", vol())
    write_tlt(tmp_path / "a.tlt", [-54.0, 0.0, 62.0])
    sources, _ = tomogram_sources([a, b])
    ra, rb = tilt_ranges(sources)
    assert (ra.tilt_min, ra.tilt_max, ra.source) == (-54.0, 62.0, str(tmp_path / "a.tlt"))
    assert rb.default and (rb.tilt_min, rb.tilt_max) == (-60.0, 60.0)
    other = write_tlt(tmp_path / "other.tlt", [-45.0, 45.0])
    sources, _ = tomogram_sources([a, b], tilt_files=[other])  # one file for all
    assert [(r.tilt_min, r.tilt_max) for r in tilt_ranges(sources)] == [(-45, 45)] * 2
    sources, _ = tomogram_sources([a, b], tilt_files=[tmp_path / "a.tlt", other])
    assert [(r.tilt_min, r.tilt_max) for r in tilt_ranges(sources)] == [(-54, 62), (-45, 45)]
    with pytest.raises(InputError, match="3 tilt-angle files given for 2 tomograms"):
        tomogram_sources([a, b], tilt_files=[other] * 3)
    single = write_tlt(tmp_path / "single.tlt", [10.0])
    with pytest.raises(InputError, match="a tilt range needs two"):
        tomogram_sources([a], tilt_files=[single])


def relion5_project(root, ts_columns):
    """A RELION-5 project: tomograms.star in a job folder, paths from the project folder."""
    job = root / "Tomograms" / "job007"
    (job / "tomograms").mkdir(parents=True)
    (root / "AlignTiltSeries" / "job005" / "tilt_series").mkdir(parents=True)
    write_mrc(job / "tomograms" / "rec_TS_01.mrc", vol())
    write_star(
        root / "AlignTiltSeries" / "job005" / "tilt_series" / "TS_01.star",
        {"TS_01": pd.DataFrame(ts_columns)},
    )
    frame = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"],
            "rlnTomoTiltSeriesStarFile": ["AlignTiltSeries/job005/tilt_series/TS_01.star"],
            "rlnVoltage": [300.0],
            "rlnTomoReconstructedTomogram": ["Tomograms/job007/tomograms/rec_TS_01.mrc"],
        }
    )
    return write_star(job / "tomograms.star", {"global": frame})


def test_relion5_tilt_series_star_gives_the_aligned_angles(tmp_path, monkeypatch):
    nominal = [-60.0, -30.0, 0.0, 30.0, 60.0]
    aligned = [-56.1, -26.0, 4.0, 34.1, 63.9]  # a pretilt corrected by the alignment
    star = relion5_project(
        tmp_path,
        {"rlnMicrographName": ["m"] * 5, "rlnTomoNominalStageTiltAngle": nominal,
         "rlnTomoYTilt": aligned},
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)  # RELION's project directory
    (entry,) = tomograms_from_star(star.relative_to(tmp_path))
    assert (entry.tilt_min, entry.tilt_max) == (-56.1, 63.9)
    assert entry.tilt_source == "TS_01.star, rlnTomoYTilt"
    angles, column = tilt_series_angles(tmp_path / "AlignTiltSeries/job005/tilt_series/TS_01.star")
    assert column == "rlnTomoYTilt" and angles.tolist() == aligned
    sources, _ = tomogram_sources([star])
    (r,) = tilt_ranges(sources)
    assert (r.tilt_min, r.tilt_max, r.default) == (-56.1, 63.9, False)


def test_relion5_nominal_angles_when_not_aligned(tmp_path, monkeypatch):
    star = relion5_project(tmp_path, {"rlnTomoNominalStageTiltAngle": [-48.0, 0.0, 51.0]})
    monkeypatch.chdir(tmp_path)
    (entry,) = tomograms_from_star(star)
    assert (entry.tilt_min, entry.tilt_max) == (-48.0, 51.0)
    assert entry.tilt_source == "TS_01.star, rlnTomoNominalStageTiltAngle"


def test_relion5_bad_tilt_series_names_the_file(tmp_path, monkeypatch, one_line_error):
    star = relion5_project(tmp_path, {"rlnMicrographName": ["a", "b"]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as info:
        tomograms_from_star(star)
    one_line_error(info, "TS_01.star", "no tilt angles", "rlnTomoYTilt")


def test_relion4_block_per_tomogram_in_the_same_file(tmp_path):
    write_mrc(tmp_path / "TS_01.mrc", vol())
    blocks = {
        "global": pd.DataFrame({"rlnTomoName": ["TS_01.mrc"]}),
        "TS_01.mrc": pd.DataFrame({"rlnTomoNominalStageTiltAngle": [-42.0, 0.0, 44.0]}),
    }
    star = write_star(tmp_path / "tomograms.star", blocks)
    (entry,) = tomograms_from_star(star)
    assert (entry.tilt_min, entry.tilt_max) == (-42.0, 44.0)


def test_star_rows_without_angles_take_a_tlt_beside_the_tomogram(tmp_path):
    write_mrc(tmp_path / "TS_01.mrc", vol())
    write_tlt(tmp_path / "TS_01.tlt", [-51.0, 0.0, 57.0])
    star = write_star(tmp_path / "t.star", pd.DataFrame({"rlnTomoName": ["TS_01.mrc"]}))
    sources, _ = tomogram_sources([star])
    (r,) = tilt_ranges(sources)
    assert (r.tilt_min, r.tilt_max, r.source) == (-51.0, 57.0, str(tmp_path / "TS_01.tlt"))
    # IsoNet2's columns win over the file
    star2 = write_star(
        tmp_path / "t2.star",
        pd.DataFrame({"rlnTomoName": ["TS_01.mrc"], "rlnTiltMin": [-60.0], "rlnTiltMax": [60.0]}),
    )
    (r,) = tilt_ranges(tomogram_sources([star2])[0])
    assert (r.tilt_min, r.tilt_max, r.source) == (-60.0, 60.0, "rlnTiltMin/rlnTiltMax")
