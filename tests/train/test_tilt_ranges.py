"""One model over tomograms of different tilt ranges: every subtomogram keeps its own wedge.

The properties: one range given per volume is the run with that range; each sample of a
batch carries its tomogram's mask; the refill keeps each subtomogram's own measured data;
the checkpoint records the ranges and prediction accepts each of them (and asks for one).
"""

import pytest
import torch

from cryogen.errors import InputError
from cryogen.model import load_model
from cryogen.train import Trainer, train
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator

RANGES = [(-60.0, 60.0), (-50.0, 56.0)]


@pytest.fixture(scope="module")
def volumes(volume):
    """The test volume with the wedge of each range."""
    clean = torch.as_tensor(volume)
    return [apply_missing_wedge(clean, *r).numpy() for r in RANGES]


def test_one_range_per_volume_is_the_run_of_that_range(tmp_path, volume, tiny, run_files):
    cfg = tiny(method="cryogen", steps=3)
    train(cfg, [volume], tmp_path / "a", progress=False)
    train(cfg, [volume], tmp_path / "b", progress=False, tilt_ranges=[(-60.0, 60.0)])
    run_files.assert_same_state(
        run_files.weights(tmp_path / "a" / "last.pt"), run_files.weights(tmp_path / "b" / "last.pt")
    )


def test_every_sample_carries_its_tomograms_wedge(tmp_path, volumes, tiny):
    t = Trainer(tiny(method="isonet", batch_size=6), volumes, tmp_path, tilt_ranges=RANGES)
    assert t.wedges.ranges == sorted(RANGES)
    batch, _ = t.next_batch(0.0)
    c = t.data.crop_size
    assert batch.wedge.shape == (6, 1, c, c, c // 2 + 1)
    for k, i in enumerate(batch.index):
        volume_index = t.data.origins[i][0]
        want = missing_wedge_mask((c, c, c), *RANGES[volume_index])
        torch.testing.assert_close(batch.wedge[k, 0], want)
    t.training_step(0.0)  # a step runs with per-sample masks


def test_the_refill_keeps_each_subtomograms_own_measured_data(tmp_path, volumes, tiny):
    t = Trainer(tiny(method="isonet"), volumes, tmp_path, tilt_ranges=RANGES)
    t.refill.update(0, 0.0)
    with torch.no_grad():  # a generator that changes everything: the refill must still keep
        for p in t.networks.g.parameters():  # each subtomogram's measured data
            p.add_(0.05)
    t.refill.refill_all()
    s = t.data.size
    for i, (v, *_o) in enumerate(t.data.origins):
        mask = missing_wedge_mask((s, s, s), *RANGES[v])
        diff = t.refill.filled[i] - t.data.subtomos[i]
        scale = float(diff.abs().max())
        assert scale > 1.0  # the fill differs
        assert float(wedge_operator(diff, mask).abs().max()) < 1e-5 * scale


def test_the_model_knows_its_ranges_and_asks_for_the_inputs(tmp_path, volumes, tiny):
    train(tiny(method="isonet", steps=2), volumes, tmp_path / "r", progress=False,
          tilt_ranges=RANGES)  # fmt: skip
    model = load_model(tmp_path / "r", "cpu")
    assert model.trained_ranges() == sorted(RANGES)
    assert model.check_tilt_range(-50, 56) == (-50.0, 56.0)
    with pytest.raises(InputError, match="give its tilt range"):
        model.check_tilt_range(None, None, "TS_01.mrc")
    with pytest.raises(InputError, match=r"TS_01.mrc: tilt range \[-45, 45\] deg"):
        model.check_tilt_range(-45, 45, "TS_01.mrc")
    with pytest.raises(InputError, match="tilt ranges"):
        train(tiny(method="isonet", steps=4), volumes, tmp_path / "r", progress=False,
              tilt_ranges=[RANGES[0], RANGES[0]], resume=True)  # fmt: skip


def test_bad_ranges_are_refused(tmp_path, volumes, tiny):
    with pytest.raises(InputError, match="1 tilt ranges given for 2 volumes"):
        Trainer(tiny(), volumes, tmp_path / "a", tilt_ranges=RANGES[:1])
    with pytest.raises(InputError, match="tilt_min"):
        Trainer(tiny(), volumes, tmp_path / "b", tilt_ranges=[(60.0, -60.0), RANGES[1]])
