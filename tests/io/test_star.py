"""STAR lists of tomograms: RELION-5 / IsoNet2 column names, paths, one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryogen.errors import InputError, OutputError
from cryogen.io import (
    CORRECTED_TOMO_NAME,
    DEFOCUS,
    MASK_NAME,
    PIXEL_SIZE,
    RECONSTRUCTED_TOMOGRAM,
    TILT_MAX,
    TILT_MIN,
    TOMO_NAME,
    VOLTAGE,
    read_star,
    read_volume,
    tomograms_from_star,
    write_star,
)
from support import write_mrc


def rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture()
def project(tmp_path):
    """An IsoNet2-like project: tomos/ beside the STAR file, a mask for the second one."""
    (tmp_path / "tomos").mkdir()
    for name in ("TS_01.bin4.rec", "TS_02.bin4.rec", "mask_02.mrc"):
        write_mrc(tmp_path / "tomos" / name, rand((6, 6, 6)))
    return tmp_path


def tomo_frame():
    return pd.DataFrame(
        {
            "rlnIndex": [1, 2],
            TOMO_NAME: ["tomos/TS_01.bin4.rec", "tomos/TS_02.bin4.rec"],
            PIXEL_SIZE: [10.8, 10.8],
            DEFOCUS: [30000.0, 42000.5],
            VOLTAGE: [300.0, 300.0],
            MASK_NAME: [None, "tomos/mask_02.mrc"],
            TILT_MIN: [-60.0, -54.0],
            TILT_MAX: [60.0, 62.0],
            CORRECTED_TOMO_NAME: [None, "corrected/TS_02.bin4_corrected.mrc"],
        }
    )


def test_star_round_trip_with_the_column_names(project):
    df = tomo_frame()
    path = write_star(project / "tomograms.star", df)
    text = path.read_text()
    for col in (TOMO_NAME, PIXEL_SIZE, MASK_NAME, TILT_MIN, TILT_MAX, CORRECTED_TOMO_NAME):
        assert f"_{col} " in text
    assert "None" in text  # missing values as IsoNet2 writes them
    back = read_star(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    with pytest.raises(OutputError, match="already exists"):
        write_star(path, df)


def test_tomograms_from_star_resolves_paths_against_the_star_folder(project, monkeypatch):
    star = write_star(project / "tomograms.star", tomo_frame())
    monkeypatch.chdir(project / "tomos")  # the working directory must not matter
    a, b = tomograms_from_star(star)
    assert a.path == project / "tomos" / "TS_01.bin4.rec" and a.path.is_file()
    assert (a.name, a.row, a.pixel_size, a.tilt_min, a.tilt_max) == (
        "tomos/TS_01.bin4.rec",
        1,
        10.8,
        -60.0,
        60.0,
    )
    assert a.mask is None and a.corrected_path is None and a.defocus == 30000.0
    assert b.mask == project / "tomos" / "mask_02.mrc"
    assert b.corrected_path == project / "corrected" / "TS_02.bin4_corrected.mrc"
    assert (b.tilt_min, b.tilt_max, b.voltage, b.cs) == (-54.0, 62.0, 300.0, None)
    vol = read_volume(a.path, pixel_size=a.pixel_size)
    assert vol.voxel_size == 10.8


def test_isonet2_star_text(project):
    # as IsoNet2's prepare_star writes it (one data_ block, None for missing values)
    (project / "tomograms.star").write_text(
        "# Created by the starfile Python package\n\ndata_\n\nloop_\n"
        "_rlnIndex #1\n_rlnTomoName #2\n_rlnPixelSize #3\n_rlnDefocus #4\n_rlnVoltage #5\n"
        "_rlnSphericalAberration #6\n_rlnAmplitudeContrast #7\n_rlnMaskBoundary #8\n"
        "_rlnMaskName #9\n_rlnTiltMin #10\n_rlnTiltMax #11\n_rlnBoxFile #12\n"
        "_rlnNumberSubtomo #13\n_rlnCorrectedTomoName #14\n"
        "1\ttomos/TS_01.bin4.rec\t10.800000\t39057\t300\t2.700000\t0.100000\tNone\tNone\t"
        "-60\t60\tNone\t600.000000\tNone\n"
        "2\ttomos/TS_02.bin4.rec\t10.800000\tNone\t300\t2.700000\t0.100000\tNone\t"
        "tomos/mask_02.mrc\t-54\t62\tNone\t600.000000\tNone\n"
    )
    a, b = tomograms_from_star(project / "tomograms.star")
    assert (a.defocus, a.cs, a.amplitude_contrast, a.mask) == (39057.0, 2.7, 0.1, None)
    assert (b.defocus, b.mask.name, b.tilt_max) == (None, "mask_02.mrc", 62.0)


def test_star_with_several_blocks_and_relion5_paths(project):
    # RELION-5: rlnTomoName is a bare name, the file is rlnTomoReconstructedTomogram;
    # the tomogram block is not the first one
    blocks = {
        "optics": pd.DataFrame({VOLTAGE: [300.0]}),
        "global": pd.DataFrame(
            {
                TOMO_NAME: ["01"],
                RECONSTRUCTED_TOMOGRAM: ["tomos/TS_01.bin4.rec"],
                TILT_MIN: [-60.0],
                TILT_MAX: [60.0],
            }
        ),
    }
    star = write_star(project / "relion.star", blocks)
    assert isinstance(read_star(star, block="optics"), pd.DataFrame)
    assert list(read_star(star).columns)[0] == TOMO_NAME
    (entry,) = tomograms_from_star(star)
    assert entry.name == "01"  # a name, not the number 1
    assert entry.path == project / "tomos" / "TS_01.bin4.rec"
    with pytest.raises(InputError, match="data_nope"):
        read_star(star, block="nope")


def test_star_errors_name_the_file_and_row(project, one_line_error):
    df = tomo_frame()
    star = project / "t.star"
    write_star(star, df.drop(columns=[TOMO_NAME]))
    with pytest.raises(InputError) as e:
        tomograms_from_star(star)
    one_line_error(e, star, TOMO_NAME)

    bad = df.copy()
    bad.loc[1, TOMO_NAME] = "tomos/TS_99.rec"
    write_star(star, bad, overwrite=True)
    with pytest.raises(InputError) as e:
        tomograms_from_star(star)
    one_line_error(e, star, "row 2", "TS_99.rec", "does not exist")

    bad = df.copy()
    bad.loc[0, MASK_NAME] = "tomos/no_mask.mrc"
    write_star(star, bad, overwrite=True)
    with pytest.raises(InputError) as e:
        tomograms_from_star(star)
    one_line_error(e, "row 1", MASK_NAME, "no_mask.mrc")

    bad = df.copy()
    bad[TILT_MIN] = [-60.0, 70.0]
    write_star(star, bad, overwrite=True)
    with pytest.raises(InputError, match="row 2.*rlnTiltMin"):
        tomograms_from_star(star)

    bad = df.astype({PIXEL_SIZE: object})
    bad.loc[0, PIXEL_SIZE] = "ten"
    write_star(star, bad, overwrite=True)
    with pytest.raises(InputError, match="row 1.*rlnPixelSize 'ten'"):
        tomograms_from_star(star)


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage", b"just some words\n"])
def test_not_a_star_file(tmp_path, content, one_line_error):
    path = tmp_path / "x.star"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_star(path)
    one_line_error(e, path)
    with pytest.raises(InputError, match="not found"):
        read_star(tmp_path / "none.star")
