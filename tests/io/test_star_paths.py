"""Paths of STAR files resolve as RELION resolves them: from the project directory (the
working directory) for a STAR file inside it, else from the STAR file's folder."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cryogen.io import (
    read_star,
    rebase_paths,
    relative_path,
    resolve_star_path,
    tomograms_from_star,
    write_star,
)
from cryogen.io.inputs import output_plan
from support import write_mrc


def vol():
    return np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)


def relion_job(root):
    """Tomograms/job007/tomograms.star listing a tomogram by its path from ``root``."""
    job = root / "Tomograms" / "job007"
    (job / "tomograms").mkdir(parents=True)
    write_mrc(job / "tomograms" / "rec_TS_01.mrc", vol())
    frame = pd.DataFrame(
        {"rlnTomoName": ["TS_01"], "rlnTomoReconstructedTomogram": [
            "Tomograms/job007/tomograms/rec_TS_01.mrc"]}
    )  # fmt: skip
    return write_star(job / "tomograms.star", {"global": frame})


def test_relion_paths_resolve_from_the_project_directory(tmp_path, monkeypatch):
    star = relion_job(tmp_path)
    monkeypatch.chdir(tmp_path)
    (entry,) = tomograms_from_star("Tomograms/job007/tomograms.star")
    assert entry.path.resolve() == (tmp_path / "Tomograms/job007/tomograms/rec_TS_01.mrc")
    # read from elsewhere, the folders above the STAR file stand in for the project
    monkeypatch.chdir(tmp_path / "Tomograms")
    (entry,) = tomograms_from_star(star)
    assert entry.path.resolve() == (tmp_path / "Tomograms/job007/tomograms/rec_TS_01.mrc")


def test_outputs_are_recorded_from_the_project_directory(tmp_path, monkeypatch):
    star = relion_job(tmp_path)
    monkeypatch.chdir(tmp_path)
    plan = output_plan(star, "_deconv")
    (task,) = plan.tasks
    assert task.output == tmp_path / "Tomograms/job007/tomograms/rec_TS_01_deconv.mrc"
    write_mrc(task.output, vol())
    plan.record("rlnDeconvTomoName")
    frame = read_star(star)
    assert frame["rlnDeconvTomoName"][0] == "Tomograms/job007/tomograms/rec_TS_01_deconv.mrc"
    assert frame["rlnTomoReconstructedTomogram"][0] == "Tomograms/job007/tomograms/rec_TS_01.mrc"
    (entry,) = tomograms_from_star(star)
    assert entry.deconv_path.resolve() == task.output.resolve()


def test_a_star_file_outside_the_project_keeps_paths_from_its_folder(tmp_path, monkeypatch):
    inside, outside = tmp_path / "project", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    monkeypatch.chdir(inside)
    tomo = write_mrc(outside / "a.mrc", vol())
    assert relative_path(tomo, outside) == "a.mrc"
    assert relative_path(tomo, inside / "sub") == os.path.join("..", "elsewhere", "a.mrc")
    assert resolve_star_path("a.mrc", outside) == outside / "a.mrc"


def test_moving_a_star_file_keeps_every_path_valid(tmp_path, monkeypatch):
    # written before paths were recorded from the project: relative to its own folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    write_mrc(tmp_path / "lists" / "a.mrc", vol())
    frame = pd.DataFrame({"rlnTomoName": ["a.mrc"], "rlnDeconvTomoName": ["a_deconv.mrc"]})
    moved = rebase_paths(frame, tmp_path / "lists", tmp_path / "out")
    assert moved["rlnTomoName"][0] == os.path.join("lists", "a.mrc")  # found, from the project
    assert moved["rlnDeconvTomoName"][0] == "a_deconv.mrc"  # an output: from the project
