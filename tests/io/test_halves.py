"""Half-sets (even/odd) and deconvolved maps of a training set: which file each volume is
read from, the mean of two halves, and one-line errors for halves that do not match."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryogen.errors import InputError
from cryogen.io import tomogram_sources, write_star, write_tlt
from cryogen.io.inputs import load_tomograms
from support import write_mrc


def rand(seed, shape=(8, 10, 12)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture()
def halves(tmp_path):
    a = write_mrc(tmp_path / "TS_01_even.mrc", rand(1), 5.0)
    b = write_mrc(tmp_path / "TS_01_odd.mrc", rand(2), 5.0)
    return a, b


def test_halves_alone_train_on_their_mean(tmp_path, halves):
    sources, star = tomogram_sources([], halves=[halves])
    assert star is None and sources[0].from_halves
    data = load_tomograms(sources)
    np.testing.assert_allclose(data.volumes[0], (rand(1) + rand(2)) / 2, rtol=1e-6)
    (pair,) = data.halves
    np.testing.assert_array_equal(pair[0], rand(1))
    np.testing.assert_array_equal(pair[1], rand(2))
    assert data.voxel_size == 5.0
    assert data.files == [f"mean of {halves[0]} and {halves[1]}"]


def test_a_given_tomogram_is_used_with_its_halves(tmp_path, halves):
    full = write_mrc(tmp_path / "TS_01.mrc", rand(3), 5.0)
    data = load_tomograms(tomogram_sources([full], halves=[halves])[0])
    np.testing.assert_array_equal(data.volumes[0], rand(3))
    assert data.halves is not None and len(data.halves) == 1


def test_halves_from_star_columns(tmp_path, halves):
    write_mrc(tmp_path / "TS_01.mrc", rand(3), 5.0)
    frame = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01.mrc"],
            "rlnTomoReconstructedTomogramHalf1": ["TS_01_even.mrc"],
            "rlnTomoReconstructedTomogramHalf2": ["TS_01_odd.mrc"],
        }
    )
    sources, _ = tomogram_sources([write_star(tmp_path / "t.star", frame)])
    assert (sources[0].half1, sources[0].half2) == halves
    data = load_tomograms(sources)
    np.testing.assert_array_equal(data.halves[0][1], rand(2))


@pytest.mark.parametrize(
    "change, needles",
    [
        ("shape", ["TS_01_odd.mrc (8, 10, 13)", "one shape"]),
        ("voxel", ["TS_01_odd.mrc", "voxel size 6", "5 Å"]),
        ("tilt", ["TS_01_odd.mrc", "tilt range -50/50", "-60/60", "missing wedge"]),
    ],
)
def test_halves_that_do_not_match_are_one_line_errors(
    tmp_path, halves, change, needles, one_line_error
):
    full = write_mrc(tmp_path / "TS_01.mrc", rand(3), 5.0)
    write_tlt(tmp_path / "TS_01.tlt", [-60.0, 0.0, 60.0])
    if change == "shape":
        write_mrc(halves[1], rand(2, (8, 10, 13)), 5.0)
    elif change == "voxel":
        write_mrc(halves[1], rand(2), 6.0)
    else:
        write_tlt(tmp_path / "TS_01_odd.tlt", [-50.0, 0.0, 50.0])
    with pytest.raises(InputError) as info:
        load_tomograms(tomogram_sources([full], halves=[halves])[0])
    one_line_error(info, *needles)


def test_halves_for_some_tomograms_only_are_refused(tmp_path, halves, one_line_error):
    frame = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01_even.mrc", "TS_01_odd.mrc"],
            "rlnTomoReconstructedTomogramHalf1": ["TS_01_even.mrc", None],
            "rlnTomoReconstructedTomogramHalf2": ["TS_01_odd.mrc", None],
        }
    )
    sources, _ = tomogram_sources([write_star(tmp_path / "t.star", frame)])
    with pytest.raises(InputError) as info:
        load_tomograms(sources)
    one_line_error(info, "row 2", "no half-sets")
    with pytest.raises(InputError, match="2 half-set pairs given for 1 tomograms"):
        tomogram_sources([halves[0]], halves=[halves, halves])
    with pytest.raises(InputError, match="half-sets in its rlnTomoReconstructedTomogramHalf1/2"):
        tomogram_sources([tmp_path / "t.star"], halves=[halves])


def test_deconvolved_maps_are_used_when_listed_and_said(tmp_path):
    write_mrc(tmp_path / "a.mrc", rand(1))
    write_mrc(tmp_path / "a_deconv.mrc", rand(2))
    write_mrc(tmp_path / "b.mrc", rand(3))
    frame = pd.DataFrame(
        {"rlnTomoName": ["a.mrc", "b.mrc"], "rlnDeconvTomoName": ["a_deconv.mrc", None]}
    )
    sources, _ = tomogram_sources([write_star(tmp_path / "t.star", frame)])
    data = load_tomograms(sources, deconvolved=True)
    np.testing.assert_array_equal(data.volumes[0], rand(2))
    np.testing.assert_array_equal(data.volumes[1], rand(3))
    assert data.files == [
        f"{tmp_path / 'a_deconv.mrc'} (rlnDeconvTomoName)",
        str(tmp_path / "b.mrc"),
    ]
    raw = load_tomograms(sources, deconvolved=False)
    np.testing.assert_array_equal(raw.volumes[0], rand(1))
    assert raw.files[0] == str(tmp_path / "a.mrc")
