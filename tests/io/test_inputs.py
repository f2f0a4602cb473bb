"""The tomograms of a command's arguments: tilt range and volumes of a training set, MRC
files of folders, one output per tomogram recorded in a STAR column."""

import logging

import numpy as np
import pandas as pd
import pytest

from cryogen.errors import InputError, OutputError
from cryogen.io import read_star, read_volume, tomogram_sources, write_star
from cryogen.io.inputs import (
    DEFAULT_TILT_RANGE,
    find_tomograms,
    load_tomograms,
    output_plan,
    shared_tilt_range,
    tilt_ranges,
    tomogram_file,
)
from support import write_mrc


def noise(shape=(8, 10, 12), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def star_of(path, rows):
    """A STAR file listing ``rows`` (dicts of RELION columns); paths relative to it."""
    frame = pd.DataFrame([{"rlnIndex": i + 1, **r} for i, r in enumerate(rows)])
    write_star(path, frame)
    return path


# ------------------------------------------------------------------------------ tilt range
def test_tilt_range_given_values_win_then_the_star_files(tmp_path):
    for name in ("a.mrc", "b.mrc"):
        write_mrc(tmp_path / name, noise())
    rows = [{"rlnTomoName": n, "rlnTiltMin": -54.0, "rlnTiltMax": 62.0} for n in ("a.mrc", "b.mrc")]
    sources, _ = tomogram_sources([star_of(tmp_path / "t.star", rows)])
    ranges = tilt_ranges(sources)
    assert shared_tilt_range(ranges) == (-54.0, 62.0)
    assert ranges[0].source == "rlnTiltMin/rlnTiltMax" and not ranges[0].default
    assert shared_tilt_range(tilt_ranges(sources, tilt_min=-40.0)) == (-40.0, 62.0)
    given = tilt_ranges(sources, tilt_max=50.0)
    assert shared_tilt_range(given) == (-54.0, 50.0)
    assert given[0].source == "given, rlnTiltMin/rlnTiltMax"


def test_tilt_range_of_mrc_files_is_the_loud_default(tmp_path):
    sources, _ = tomogram_sources([write_mrc(tmp_path / "a.mrc", noise())])
    (r,) = tilt_ranges(sources)
    assert (r.tilt_min, r.tilt_max) == DEFAULT_TILT_RANGE and r.default
    assert "recorded nowhere" in r.source
    (r,) = tilt_ranges(sources, tilt_min=-50.0, tilt_max=55.0)
    assert (r.tilt_min, r.tilt_max, r.source, r.default) == (-50.0, 55.0, "given", False)
    (r,) = tilt_ranges(sources, tilt_min=-50.0)
    assert (r.tilt_min, r.tilt_max) == (-50.0, 60.0) and r.default


def test_different_tilt_ranges_are_refused_unless_both_ends_are_given(tmp_path, one_line_error):
    for name in ("a.mrc", "b.mrc"):
        write_mrc(tmp_path / name, noise())
    rows = [
        {"rlnTomoName": "a.mrc", "rlnTiltMin": -54.0, "rlnTiltMax": 62.0},
        {"rlnTomoName": "b.mrc", "rlnTiltMin": -60.0, "rlnTiltMax": 60.0},
    ]
    sources, _ = tomogram_sources([star_of(tmp_path / "t.star", rows)])
    assert [(r.tilt_min, r.tilt_max) for r in tilt_ranges(sources)] == [(-54, 62), (-60, 60)]
    with pytest.raises(InputError) as info:
        shared_tilt_range(tilt_ranges(sources, tilt_min=-50.0))
    one_line_error(info, "different tilt ranges", "-50/60", "-50/62")
    assert shared_tilt_range(tilt_ranges(sources, tilt_min=-50.0, tilt_max=50.0)) == (-50, 50)


def test_an_upside_down_tilt_range_names_the_tomogram(tmp_path, one_line_error):
    sources, _ = tomogram_sources([write_mrc(tmp_path / "a.mrc", noise())])
    with pytest.raises(InputError) as info:
        tilt_ranges(sources, tilt_min=70.0)
    one_line_error(info, "a.mrc", "tilt_min 70", "tilt_max 60")


# ------------------------------------------------------------------------------ volumes
def test_load_tomograms_reads_volumes_masks_and_the_first_voxel_size(tmp_path, caplog):
    a, b = noise(seed=1), noise(seed=2)
    mask = (noise(seed=3) > 0).astype(np.float32)
    paths = [write_mrc(tmp_path / "a.mrc", a, 4.0), write_mrc(tmp_path / "b.mrc", b, 8.0)]
    write_mrc(tmp_path / "m.mrc", mask, 1.0)
    sources, _ = tomogram_sources(paths, masks=[tmp_path / "m.mrc", tmp_path / "m.mrc"])
    with caplog.at_level(logging.WARNING, logger="cryogen.io.training_set"):
        data = load_tomograms(sources)
    assert data.voxel_size == 4.0
    assert "b.mrc: voxel size 8 Å differs" in caplog.text
    np.testing.assert_array_equal(data.volumes[0], a)
    np.testing.assert_array_equal(data.volumes[1], b)
    assert data.masks is not None and len(data.masks) == 2
    np.testing.assert_array_equal(data.masks[1], mask)


def test_load_tomograms_without_masks_and_with_a_pixel_size(tmp_path):
    sources, _ = tomogram_sources([write_mrc(tmp_path / "a.mrc", noise(), 0.0)])
    with pytest.raises(InputError, match="voxel size 0"):
        load_tomograms(sources)
    data = load_tomograms(sources, pixel_size=3.5)
    assert data.masks is None and data.voxel_size == 3.5


def test_load_tomograms_rotates_a_y_beam_to_z(tmp_path):
    v = noise((8, 10, 12))
    sources, _ = tomogram_sources([write_mrc(tmp_path / "a.mrc", v)])
    data = load_tomograms(sources, beam_axis="y")
    expected = read_volume(tmp_path / "a.mrc", beam_axis="y").load()
    np.testing.assert_array_equal(data.volumes[0], expected)
    assert data.volumes[0].shape == (10, 8, 12)


# ------------------------------------------------------------------------------ listing
def test_find_tomograms_lists_folders_sorted_and_each_file_once(tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    for name in ("b.mrc", "a.rec", ".hidden.mrc", "notes.txt"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "c.mrc"
    single.write_bytes(b"x")
    found = find_tomograms([single, folder, folder / "a.rec"])
    assert found == [single, folder / "a.rec", folder / "b.mrc"]


def test_find_tomograms_refuses_missing_files_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="missing.mrc: file not found"):
        find_tomograms([tmp_path / "missing.mrc"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tomograms in this folder"):
        find_tomograms([tmp_path / "empty"])


# ------------------------------------------------------------------------------ one file each
def test_output_plan_of_one_mrc_file(tmp_path):
    src = write_mrc(tmp_path / "TS_01.rec", noise())
    plan = output_plan(src, "_mask")
    assert [t.output for t in plan.tasks] == [tmp_path / "TS_01_mask.mrc"]
    assert plan.star is None and plan.record("rlnMaskName") is None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert (
        output_plan(src, "_mask", output_dir=out_dir).tasks[0].output == out_dir / "TS_01_mask.mrc"
    )
    assert (
        output_plan(src, "_mask", output=tmp_path / "m.mrc").tasks[0].output == tmp_path / "m.mrc"
    )


def test_output_plan_checks_every_output_before_work(tmp_path):
    for name in ("a.mrc", "b.mrc"):
        write_mrc(tmp_path / name, noise())
    star = star_of(tmp_path / "t.star", [{"rlnTomoName": "a.mrc"}, {"rlnTomoName": "b.mrc"}])
    plan = output_plan(star, "_deconv")
    plan.check()
    (tmp_path / "b_deconv.mrc").write_bytes(b"x")
    with pytest.raises(OutputError, match="b_deconv.mrc already exists"):
        plan.check()
    plan.check(overwrite=True)


def test_recorded_outputs_resolve_from_a_star_file_written_elsewhere(tmp_path):
    for name in ("a.mrc", "b.mrc"):
        write_mrc(tmp_path / name, noise())
    star = star_of(tmp_path / "t.star", [{"rlnTomoName": "a.mrc"}, {"rlnTomoName": "b.mrc"}])
    sub = tmp_path / "sub"
    sub.mkdir()
    plan = output_plan(star, "_mask", output=sub / "t.star")
    assert [t.output for t in plan.tasks] == [tmp_path / "a_mask.mrc", tmp_path / "b_mask.mrc"]
    assert plan.record("rlnMaskName") == sub / "t.star"
    frame = read_star(sub / "t.star")
    assert list(frame["rlnTomoName"]) == ["../a.mrc", "../b.mrc"]
    assert list(frame["rlnMaskName"]) == ["../a_mask.mrc", "../b_mask.mrc"]
    assert "rlnMaskName" not in read_star(star).columns  # the input STAR file is kept


def test_recorded_in_place(tmp_path):
    write_mrc(tmp_path / "a.mrc", noise())
    star = star_of(tmp_path / "t.star", [{"rlnTomoName": "a.mrc"}])
    assert output_plan(star, "_deconv").record("rlnDeconvTomoName") == star
    assert list(read_star(star)["rlnDeconvTomoName"]) == ["a_deconv.mrc"]


def test_tomogram_file_prefers_an_existing_deconvolved_tomogram(tmp_path, caplog):
    write_mrc(tmp_path / "a.mrc", noise())
    write_mrc(tmp_path / "b.mrc", noise())
    write_mrc(tmp_path / "a_deconv.mrc", noise())
    rows = [
        {"rlnTomoName": "a.mrc", "rlnDeconvTomoName": "a_deconv.mrc"},
        {"rlnTomoName": "b.mrc", "rlnDeconvTomoName": "b_deconv.mrc"},
    ]
    a, b = tomogram_sources([star_of(tmp_path / "t.star", rows)])[0]
    assert tomogram_file(a) == tmp_path / "a.mrc"
    assert tomogram_file(a, deconvolved=True) == tmp_path / "a_deconv.mrc"
    with caplog.at_level(logging.WARNING, logger="cryogen.io.sources"):
        assert tomogram_file(b, deconvolved=True) == tmp_path / "b.mrc"
    assert "row 2: rlnDeconvTomoName" in caplog.text and "does not exist" in caplog.text
