"""Refilled targets: only the missing wedge is replaced, on the rolling or the rounds
schedule, and with ``refill_tta`` by the rotation average."""

import pytest
import torch

from cryogen.rotations import rotate, rotate_inverse
from cryogen.train import Trainer
from cryogen.wedge import wedge_operator, wedge_symmetries


@pytest.mark.parametrize("method", ["isonet", "cryogen"])
def test_refill_keeps_measured_data_and_follows_its_schedule(tmp_path, volume, tiny, method):
    """A refill replaces only the missing wedge (``T_M x = T_M y``); rolling: one
    subtomogram every ``refill_every`` steps in turn; rounds: all of them at a new round."""
    cfg = tiny(method=method, steps=10, refill_every=2, rounds=4)
    t = Trainer(cfg, [volume], tmp_path / "r")
    torch.manual_seed(1)
    with torch.no_grad():  # a generator that is not the identity (its head starts at zero)
        for q in t.networks.g.parameters():
            q.add_(0.3 * torch.randn_like(q))
    y = t.data.subtomos
    refill = t.refill
    refill.update(0, 0.0)
    assert torch.equal(refill.filled, y)  # g' = identity before training
    for step, refilled in [(1, []), (2, [0]), (3, [0]), (4, [0, 1])]:
        refill.update(step, step / 10)
        for i in range(len(y)):
            changed = not torch.equal(refill.filled[i], y[i])
            assert changed == (i in refilled), (step, i)
    for i in (0, 1):
        diff = (refill.filled[i] - y[i])[None, None]
        assert float(wedge_operator(diff, t.wedges.subtomogram).abs().max()) < 1e-4
        assert float(diff.abs().max()) > 1e-2
    assert refill.round == 1  # progress 0.4 of 4 rounds: the round still sets the noise

    t.cfg.refill_every = None  # rounds: everything refilled when a new round starts
    refill.filled = y.clone()
    refill.update(4, 0.45)
    assert torch.equal(refill.filled, y)
    refill.update(4, 0.5)
    assert refill.round == 2 and all(not torch.equal(refill.filled[i], y[i]) for i in range(len(y)))


@pytest.mark.parametrize("tilt", [(-60.0, 60.0), (-54.0, 62.0)])
def test_refill_tta_fills_the_wedge_with_the_rotation_average(tmp_path, volume, tiny, tilt):
    """refill_tta: the wedge of a refilled subtomogram holds the mean of R^-1 g(R y) over
    the rotations that keep the wedge; the measured data stay; and it is not g(y)."""
    filled = {}
    for tta in (False, True):
        cfg = tiny(steps=4, refill_every=1, refill_tta=tta, tilt_min=tilt[0], tilt_max=tilt[1])
        t = Trainer(cfg, [volume], tmp_path / f"r{tta}")
        torch.manual_seed(1)
        with torch.no_grad():  # a generator that is not the identity (its head starts at zero)
            for q in t.networks.g.parameters():
                q.add_(0.3 * torch.randn_like(q))
        t.refill.filled = t.data.subtomos.clone()
        t.refill.refill_one(0)
        y = t.data.subtomos[0][None, None]
        g = t.networks.generator
        with torch.no_grad():
            gys = [rotate_inverse(g(rotate(y, r).contiguous()), r) for r in wedge_symmetries(*tilt)]
        gy = torch.stack(gys).mean(0) if tta else gys[0]
        mask_sub = t.wedges.subtomogram
        ref = (wedge_operator(y - gy, mask_sub) + gy)[0, 0]
        torch.testing.assert_close(t.refill.filled[0], ref, rtol=1e-5, atol=1e-5)
        diff = (t.refill.filled[0] - y[0, 0])[None, None]
        assert float(wedge_operator(diff, mask_sub).abs().max()) < 1e-4
        filled[tta] = t.refill.filled[0]
    assert float((filled[True] - filled[False]).abs().max()) > 1e-3
