"""Training on half-sets (Noise2Noise): one half is the input, the other the target.

The properties: two identical halves train the weights of training without half-sets
(both methods, every term on); the target is the other half only where that half was
measured (its missing wedge comes from the denoised estimate); at the truth the loss is
the noise floor of the target half, below the loss at the input; a run resumes with its
half-set choice, and refuses to resume with other data.
"""

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.train import Trainer, train
from cryogen.train.methods import rotate_batch
from cryogen.wedge import missing_wedge_mask, wedge_operator


def noisy_halves(volume, sigma=0.3, seed=0):
    """Two halves of ``volume``: the same wedged data, independent noise in the measured
    region."""
    g = torch.Generator().manual_seed(seed)
    v = torch.as_tensor(volume)
    mask = missing_wedge_mask(tuple(v.shape), -60, 60)
    noise = [wedge_operator(torch.randn(v.shape, generator=g), mask) * sigma for _ in range(2)]
    return (v + noise[0]).numpy(), (v + noise[1]).numpy()


@pytest.mark.parametrize("method", ["isonet", "cryogen"])
def test_identical_halves_train_the_weights_of_no_halves(tmp_path, volume, tiny, run_files, method):
    cfg = tiny(method=method, steps=3)
    train(cfg, [volume], tmp_path / "plain", progress=False)
    train(cfg, [volume], tmp_path / "halves", progress=False, halves=[(volume, volume)])
    run_files.assert_same_state(
        run_files.weights(tmp_path / "plain" / "last.pt"),
        run_files.weights(tmp_path / "halves" / "last.pt"),
    )


def test_input_and_target_come_from_different_halves(tmp_path, volume, tiny):
    a, b = noisy_halves(volume)
    t = Trainer(tiny(method="isonet", batch_size=4), [(a + b) / 2], tmp_path, halves=[(a, b)])
    t.refill.update(0, 0.0)
    batch, _ = t.next_batch(0.0)
    assert batch.halves is not None and len(set(batch.halves)) in (1, 2)
    x, target = t.refill.pair(batch)
    for k, h in enumerate(batch.halves):
        own = t.data.crop(t.data.halves[h], [batch.index[k]], [batch.offsets[k]])
        other = t.data.crop(t.data.halves[1 - h], [batch.index[k]], [batch.offsets[k]])
        torch.testing.assert_close(x[k : k + 1], own)  # round 0: g' = identity
        torch.testing.assert_close(target[k : k + 1], other)
        torch.testing.assert_close(batch.y[k : k + 1], own)
        torch.testing.assert_close(batch.other[k : k + 1], other)


def test_the_target_is_the_other_half_only_where_it_was_measured(tmp_path, volume, tiny):
    """Refilled, a half's subtomogram keeps its data inside the measured region and takes
    the generator's estimate of the mean in the missing wedge: what the other half holds
    in its missing wedge never reaches the loss; what it holds where it was measured does.
    Rotated with the sample (a permutation), that is the measured region of the target half
    in the rotated frame."""
    a, b = noisy_halves(volume)
    t = Trainer(tiny(method="isonet"), [(a + b) / 2], tmp_path, halves=[(a, b)])
    t.refill.update(0, 0.0)
    mask = t.wedges.subtomogram_for(0)
    t.refill.refill_one(0)
    before = t.refill.filled[1, 0].clone()
    g = torch.Generator().manual_seed(3)
    inside = lambda v: wedge_operator(v, mask)  # noqa: E731
    wedge_part = t.data.halves[1, 0] - inside(t.data.halves[1, 0])
    extra = torch.randn(t.data.halves.shape[2:], generator=g)
    t.data.halves[1, 0] += extra - inside(extra)  # change only the missing wedge of half 2
    assert float((t.data.halves[1, 0] - inside(t.data.halves[1, 0]) - wedge_part).abs().max()) > 0.1
    t.refill.refill_one(0)
    torch.testing.assert_close(t.refill.filled[1, 0], before, atol=1e-5, rtol=0)
    t.data.halves[1, 0] += inside(extra)  # now its measured region
    t.refill.refill_one(0)
    assert float((t.refill.filled[1, 0] - before).abs().max()) > 0.1
    # the estimate is of the mean: half 1's refill has half 2's fill
    fill = lambda v: v - inside(v)  # noqa: E731
    torch.testing.assert_close(
        fill(t.refill.filled[0, 0]), fill(t.refill.filled[1, 0]), atol=1e-5, rtol=0
    )


def test_the_loss_at_the_truth_is_the_noise_floor(tmp_path, volume, tiny):
    """With the true fill in place, a generator that returns the truth scores the noise of
    the target half (the floor, set by the target's noise alone), and one that returns its
    input scores the noise of both halves: about twice as much."""
    truth = torch.as_tensor(volume)  # the wedged phantom stands in for the truth here
    a, b = noisy_halves(volume, sigma=0.5)
    t = Trainer(tiny(method="isonet"), [(a + b) / 2], tmp_path, halves=[(a, b)])
    t.refill.update(0, 0.0)
    norm = t.data.normalisation
    sub_truth = torch.stack(
        [norm.apply(truth[z : z + t.data.size, y : y + t.data.size, x : x + t.data.size])
         for _, z, y, x in t.data.origins]
    )  # fmt: skip
    mask = t.wedges.subtomogram_for(0)
    for h in (0, 1):  # the true fill: the truth's missing wedge
        own = t.data.halves[h]
        t.refill.filled[h] = wedge_operator(own, mask) + sub_truth - wedge_operator(sub_truth, mask)
    batch, _ = t.next_batch(0.0)
    truth_crops = t.data.crop(sub_truth, batch.index, batch.offsets)
    x, target = t.refill.pair(batch)
    floor = float((target - truth_crops).pow(2).mean())  # the target half's measured noise
    both = float((target - x).pow(2).mean())

    def loss_with(output):
        t.networks.generator = lambda v: output  # the generator's answer, rotated frame
        return float(t.method.losses(batch, 0.0).loss)

    at_truth = loss_with(rotate_batch(truth_crops, batch.rotations))
    at_input = loss_with(rotate_batch(x, batch.rotations))
    assert at_truth == pytest.approx(floor, rel=1e-5)
    assert at_input == pytest.approx(both, rel=1e-5)
    assert at_input > 1.5 * at_truth


def test_cryogen_data_term_compares_against_the_other_half(tmp_path, volume, tiny):
    a, b = noisy_halves(volume)
    t = Trainer(tiny(method="cryogen"), [(a + b) / 2], tmp_path, halves=[(a, b)])
    t.refill.update(0, 0.0)
    batch, _ = t.next_batch(0.0)
    est = batch.other.clone()  # an estimate equal to the other half: data term 0
    assert float(t.method.data_term(est, batch)) == pytest.approx(0.0, abs=1e-10)
    assert float(t.method.data_term(batch.y.clone(), batch)) > 0.01


def test_a_half_set_run_resumes_with_its_halves_only(tmp_path, volume, tiny, run_files):
    a, b = noisy_halves(volume)
    mean = (a + b) / 2
    cfg = tiny(method="cryogen", steps=6, refill_every=2, batch_size=2)
    train(cfg, [mean], tmp_path / "full", progress=False, halves=[(a, b)])
    stop = lambda info: info["step"] == 3  # noqa: E731
    train(cfg, [mean], tmp_path / "part", progress=False, halves=[(a, b)], callback=stop)
    train(cfg, [mean], tmp_path / "part", progress=False, halves=[(a, b)], resume=True)
    run_files.assert_same_state(
        run_files.weights(tmp_path / "full" / "last.pt"),
        run_files.weights(tmp_path / "part" / "last.pt"),
    )
    with pytest.raises(InputError, match="half-sets"):
        train(cfg, [mean], tmp_path / "part", progress=False, resume=True)


def test_halves_must_match_their_volume(tmp_path, volume, tiny):
    a, b = noisy_halves(volume)
    with pytest.raises(InputError, match="half-set 2 has shape"):
        Trainer(tiny(), [volume], tmp_path / "x", halves=[(a, b[:-1])])
    with pytest.raises(InputError, match="1 half-set pairs given for 2 volumes"):
        Trainer(tiny(), [volume, volume], tmp_path / "y", halves=[(a, b)])
    assert np.asarray(a).shape == np.asarray(volume).shape


def test_a_short_half_set_run_says_how_many_steps_noisy_data_need(tmp_path, volume, tiny, caplog):
    from cryogen.train.loop import HALF_SET_STEPS

    a, b = noisy_halves(volume)
    with caplog.at_level("WARNING", logger="cryogen"):
        train(tiny(steps=2), [(a + b) / 2], tmp_path / "h", progress=False, halves=[(a, b)])
        train(tiny(steps=2), [volume], tmp_path / "plain", progress=False)
    said = [r.getMessage() for r in caplog.records if "half-sets" in r.getMessage()]
    assert len(said) == 1 and f"--steps {HALF_SET_STEPS}" in said[0], said
    assert f"--steps {HALF_SET_STEPS}" in (tmp_path / "h" / "run.log").read_text()
    assert "half-sets:" not in (tmp_path / "plain" / "run.log").read_text()


@pytest.mark.parametrize("adv_wedge", ["crop", "subtomogram"])
def test_fake_noise_gives_e_s_fakes_the_half_sets_noise(tmp_path, volume, tiny, adv_wedge):
    """``fake_noise="halves"`` adds ``(y_a - y_b) / sqrt(2)`` at the batch's crops, through
    the fakes' operator: the signal cancels (two equal halves add nothing)."""
    a, b = noisy_halves(volume, sigma=0.5)
    cfg = tiny(method="cryogen", fake_noise="halves", adv_wedge=adv_wedge)
    t = Trainer(cfg, [(a + b) / 2], tmp_path / "m", halves=[(a, b)])
    t.refill.update(0, 0.0)
    batch, _ = t.next_batch(0.0)
    fake = torch.zeros_like(batch.y)
    added = t.method.with_data_noise(fake, batch)
    if adv_wedge == "crop":
        expected = t.method.crop_tm(batch.y - batch.other, batch)
    else:
        sub = t.method.wedged_subtomogram_crops
        expected = sub(batch) - sub(batch, other=True)
    torch.testing.assert_close(added, expected * 0.5**0.5)
    assert float(added.abs().max()) > 0.01
    # two equal halves: no noise to add
    same = Trainer(cfg, [a], tmp_path / "s", halves=[(a, a)])
    same.refill.update(0, 0.0)
    batch, _ = same.next_batch(0.0)
    assert float(same.method.with_data_noise(fake, batch).abs().max()) < 1e-5
    # off, or without half-sets: the fake is unchanged
    cfg_off = tiny(method="cryogen", fake_noise="none")
    off = Trainer(cfg_off, [(a + b) / 2], tmp_path / "o", halves=[(a, b)])
    off.refill.update(0, 0.0)
    batch, _ = off.next_batch(0.0)
    assert off.method.with_data_noise(fake, batch) is fake
    plain = Trainer(cfg, [a], tmp_path / "p")
    plain.refill.update(0, 0.0)
    batch, _ = plain.next_batch(0.0)
    assert plain.method.with_data_noise(fake, batch) is fake


def test_the_run_log_says_what_e_s_fakes_carry_on_half_sets(tmp_path, volume, tiny):
    a, b = noisy_halves(volume)
    for fake_noise, said in (("halves", "with the half-sets' noise"), ("none", "without noise")):
        run = tmp_path / fake_noise
        cfg = tiny(method="cryogen", steps=1, fake_noise=fake_noise)
        train(cfg, [(a + b) / 2], run, progress=False, halves=[(a, b)])
        assert f"energy model's fakes: {said}" in (run / "run.log").read_text()
    train(tiny(method="cryogen", steps=1), [volume], tmp_path / "plain", progress=False)
    assert "energy model's fakes" not in (tmp_path / "plain" / "run.log").read_text()
