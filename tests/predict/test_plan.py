"""Which files a prediction run writes: output names, folders, std maps, clashes."""

from pathlib import Path

import pandas as pd
import pytest

from cryogen.errors import InputError, OutputError
from cryogen.predict import plan_outputs
from support import write_mrc


@pytest.fixture()
def tomograms(tmp_path):
    for name in ("a.mrc", "b.rec"):
        write_mrc(tmp_path / name, [[[0.0]]])
    return tmp_path


def test_one_file_to_one_file_and_many_to_a_folder(tomograms):
    plan = plan_outputs([tomograms / "a.mrc"], tomograms / "o.mrc")
    assert [(j.input.name, j.output, j.std) for j in plan.jobs] == [
        ("a.mrc", tomograms / "o.mrc", None)
    ]
    assert plan.star_out is None and plan.write_star() is None
    plan = plan_outputs([tomograms / "a.mrc", tomograms / "b.rec"], tomograms / "out", samples=2)
    assert (tomograms / "out").is_dir()
    assert [(j.output.name, j.std.name) for j in plan.jobs] == [
        ("a_corrected.mrc", "a_corrected_std.mrc"),
        ("b_corrected.mrc", "b_corrected_std.mrc"),
    ]
    with pytest.raises(InputError, match="2 tomograms need an output folder"):
        plan_outputs([tomograms / "a.mrc", tomograms / "b.rec"], tomograms / "x.mrc")
    with pytest.raises(OutputError, match="does not exist"):
        plan_outputs([tomograms / "a.mrc"], tomograms / "no" / "such")


def test_same_output_names_and_existing_outputs_are_refused(tomograms):
    write_mrc(tomograms / "a.rec", [[[0.0]]])
    with pytest.raises(InputError, match="would both be written to"):
        plan_outputs([tomograms / "a.mrc", tomograms / "a.rec"], tomograms / "out")
    plan = plan_outputs([tomograms / "a.mrc"], tomograms / "b.rec")
    with pytest.raises(OutputError, match="already exists") as err:
        plan.check_files()
    assert err.value.advice == "overwrite"
    plan.check_files(overwrite=True)
    with pytest.raises(InputError, match="file not found"):
        plan_outputs([tomograms / "none.mrc"], tomograms / "o.mrc").check_files()


def test_star_rows_bring_their_pixel_size_and_tilt_range(tomograms):
    from cryogen.io import write_star

    frame = pd.DataFrame(
        {"rlnTomoName": ["a.mrc"], "rlnPixelSize": [3.5], "rlnTiltMin": [-54.0],
         "rlnTiltMax": [62.0]}
    )  # fmt: skip
    write_star(tomograms / "t.star", frame)
    plan = plan_outputs([tomograms / "t.star"], tomograms / "out")
    (job,) = plan.jobs
    assert job.pixel_size == 3.5 and job.tilt == (-54.0, 62.0)
    assert job.where.endswith("t.star, row 1")
    assert plan.star == tomograms / "t.star"
    assert plan.star_out == Path(tomograms / "out" / "t_corrected.star")
    assert (
        plan_outputs([tomograms / "t.star"], tomograms / "out", pixel_size=2.0).jobs[0].pixel_size
        == 2.0
    )


def test_an_output_folder_made_by_another_rank_meanwhile_is_taken(tomograms, monkeypatch):
    """Under torchrun every rank plans the outputs: a folder that another rank made between
    this rank's check and its ``mkdir`` is the folder wanted, not an error."""
    out = tomograms / "out"
    real_exists, looked = Path.exists, []

    def exists_then_made(self):
        if self != out:
            return real_exists(self)
        if not real_exists(self):
            looked.append(self)
            if len(looked) == 2:  # this rank's last look: the other rank makes it now
                self.mkdir()
            return False
        return True

    monkeypatch.setattr(Path, "exists", exists_then_made)
    plan = plan_outputs([tomograms / "a.mrc", tomograms / "b.rec"], out)
    assert out.is_dir() and [j.output.parent for j in plan.jobs] == [out, out]
