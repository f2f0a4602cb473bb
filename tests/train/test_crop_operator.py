"""One operator for real crops, fakes and the data term: the crop's hard ``T_M`` is biased
(a crop of the truth does not look like a crop of wedged data through it), the tapered
operator with a guard band is not, and on a whole volume the hard ``T_M`` is exact; E
trained against a perfect generator's fakes stays near chance while it still tells a
generator that fills nothing."""

import pytest
import torch
import torch.nn.functional as F

from cryogen.errors import InputError
from cryogen.rotations import WEDGE_ROTATIONS, rotate
from cryogen.train import Trainer, train
from cryogen.train.energy_check import energy_bias
from cryogen.train.methods import Batch, EnergyDraws
from cryogen.train.methods.operators import CropWedge, resolve_operator, taper_window
from cryogen.wedge import (
    apply_missing_wedge,
    guarded_wedge_mask,
    missing_wedge_mask,
    wedge_symmetries,
)

TILT = (-60.0, 60.0)


def smooth_volumes(n, size, seed=0):
    """``n`` smooth random volumes (unit std) and their wedged copies."""
    g = torch.Generator().manual_seed(seed)
    xs = [
        F.avg_pool3d(torch.randn(1, 1, size, size, size, generator=g), 3, 1, 1)[0, 0]
        for _ in range(n)
    ]
    xs = [x / x.std() for x in xs]
    return xs, [apply_missing_wedge(x, *TILT) for x in xs]


def crop_at(v, o, c):
    return v[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]


def batch_at(trainer, offset, rotations=(0,)):
    """A one-crop batch of subtomogram 0 at ``offset``."""
    return Batch(
        step=0,
        index=[0],
        offsets=[offset],
        y=trainer.data.crop(trainer.data.subtomos, [0], [offset]),
        rotations=list(rotations),
        u=1.0,
        wedge=trainer.wedges.crop,
    )


def test_the_guard_band_is_the_measured_region_less_the_wedges_border():
    shape = (24, 24, 24)
    base = missing_wedge_mask(shape, *TILT)
    assert torch.equal(guarded_wedge_mask(shape, *TILT, 0.0), base)
    kept = [float(guarded_wedge_mask(shape, *TILT, g).mean()) for g in (1, 2, 3, 4)]
    assert kept == sorted(kept, reverse=True) and kept[0] < float(base.mean())
    guarded = guarded_wedge_mask(shape, *TILT, 3.0)
    assert bool((guarded <= base).all()) and float(guarded[0, 0, 0]) == 0.0  # DC dropped
    assert float(guarded_wedge_mask(shape, -90.0, 90.0, 3.0).min()) == 1.0  # nothing missing
    w = taper_window(16, 4)
    assert w.shape == (16, 16, 16) and float(w[8, 8, 8]) == 1.0 and float(w.max()) == 1.0
    assert float(w[0, 8, 8]) < 0.05
    with pytest.raises(ValueError, match="does not fit"):
        taper_window(16, 9)


def test_the_tapered_operator_sees_a_crop_of_wedged_data_as_the_truths():
    """Through the hard T_M a crop of wedged data differs from the same crop of the truth by
    several % of its energy; through the tapered operator with the guard band by < 0.2 %."""
    (x,), (y,) = smooth_volumes(1, 40)
    c = 24
    ops = {
        "hard": CropWedge.make(c, TILT),
        "tapered": CropWedge.make(c, TILT, "tapered", taper=6, guard=3.0),
    }
    gap = {}
    for name, op in ops.items():
        num = den = 0.0
        for o in [(0, 0, 0), (16, 3, 9), (7, 16, 2), (11, 11, 11)]:
            num += float((op(crop_at(x, o, c)) - op(crop_at(y, o, c))).pow(2).mean())
            den += float(op(crop_at(y, o, c)).pow(2).mean())
        gap[name] = num / den
    assert gap["hard"] > 0.03 and gap["tapered"] < 2e-3, gap


def test_on_a_whole_volume_the_hard_operator_is_exact(tmp_path, tiny):
    """Crop = subtomogram = volume: the truth's fake is the real sample turned by R, and the
    data term at the truth is zero."""
    (x,), (y,) = smooth_volumes(1, 24, seed=3)
    cfg = tiny(subtomo_size=24, crop_size=24, n_subtomos=1, steps=1, adv_margin=0)
    t = Trainer(cfg, [y.numpy()], tmp_path / "r")
    m = t.method
    truth = t.data.normalisation.apply(x)[None, None]
    batch = batch_at(t, (0, 0, 0))
    real = m.real(batch)
    torch.testing.assert_close(real, batch.y, atol=1e-5, rtol=0)  # T_M y = y
    for r in WEDGE_ROTATIONS[:4]:
        fake = m.fake(truth, lambda r=r: rotate(truth, r), batch, [r])
        torch.testing.assert_close(fake, m.crop_tm(rotate(truth, r), batch))
    torch.testing.assert_close(m.fake(truth, lambda: truth, batch, [0]), real, atol=1e-5, rtol=0)
    assert float(m.data_term(truth, batch)) < 1e-10


def test_cryogen_puts_real_fake_and_data_through_one_operator(tmp_path, tiny):
    (x,), (y,) = smooth_volumes(1, 24, seed=1)
    cfg = tiny(crop_operator="tapered", crop_taper=4, n_subtomos=1, steps=1, adv_margin=0)
    t = Trainer(cfg, [y.numpy()], tmp_path / "r")
    m = t.method
    op = CropWedge.make(16, TILT, "tapered", 4, cfg.wedge_guard)
    o = (3, 5, 8)
    batch = batch_at(t, o)
    truth = crop_at(t.data.normalisation.apply(x), o, 16)[None, None]
    torch.testing.assert_close(m.real(batch), op(batch.y))
    r = WEDGE_ROTATIONS[5]
    torch.testing.assert_close(
        m.fake(truth, lambda: rotate(truth, r), batch, [r]), op(rotate(truth, r))
    )
    m.e_on, row = False, {}
    m.energy_and_data(truth, None, batch, EnergyDraws(1.0, 1.0, 1.0), 0.0, row)
    torch.testing.assert_close(row["data"], float(op(truth - batch.y).pow(2).mean()))
    # the truth scores about zero through the tapered operator, not through the hard one
    tapered = row["data"] / float(op(batch.y).pow(2).mean())
    t.cfg.crop_operator = "hard"
    hard_m = Trainer(t.cfg, [y.numpy()], tmp_path / "h").method
    hard = float(hard_m.data_term(truth, batch)) / float(batch.tm(batch.y).pow(2).mean())
    assert tapered < 5e-3 and hard > 0.02, (tapered, hard)


@pytest.mark.parametrize("tilt", [TILT, (-50.0, 60.0)])
@pytest.mark.parametrize("kind", ["hard", "tapered"])
def test_the_turns_of_real_turns_commute_with_the_operator(tilt, kind):
    """``real_turns`` turns a real sample ``op(y)`` into ``op(R y)``, a real sample of the
    turned volume: both operators commute with the wedge's symmetries, for symmetric and
    asymmetric ranges."""
    (x,), _ = smooth_volumes(1, 16, seed=3)
    op = CropWedge.make(16, tilt, kind, 4)
    turns = wedge_symmetries(*tilt)
    assert len(turns) == (4 if tilt == TILT else 2)
    for r in turns:
        torch.testing.assert_close(op(rotate(x, r)), rotate(op(x), r), atol=1e-5, rtol=0)
    # a wedge-changing rotation does not commute: the check can fail
    r = WEDGE_ROTATIONS[0]
    assert float((op(rotate(x, r)) - rotate(op(x), r)).abs().max()) > 1e-2


def test_real_turns_turn_each_real_sample_by_a_symmetry_of_its_wedge(tmp_path, tiny):
    (_,), (y,) = smooth_volumes(1, 24, seed=1)
    cfg = tiny(crop_operator="tapered", crop_taper=4, n_subtomos=1, steps=1, real_turns=True)
    t = Trainer(cfg, [y.numpy()], tmp_path / "r")
    m, batch = t.method, batch_at(t, (3, 5, 8))
    plain = CropWedge.make(16, TILT, "tapered", 4, cfg.wedge_guard)(batch.y)[0]
    seen = set()
    for _ in range(24):
        real = m.real(batch)[0]
        match = [r for r in wedge_symmetries(*TILT) if torch.allclose(real, rotate(plain, r))]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(wedge_symmetries(*TILT))  # every turn is drawn


def test_training_on_few_whole_volumes_warns_that_e_learns_them_by_heart(
    tmp_path, tiny, caplog, monkeypatch
):
    volumes = {n: [y.numpy() for y in smooth_volumes(2, n)[1]] for n in (16, 24)}
    for size, real_turns, warned in ((16, False, True), (16, True, True), (24, False, False)):
        caplog.clear()
        cfg = tiny(subtomo_size=size, crop_size=16, n_subtomos=1, steps=1, real_turns=real_turns)
        Trainer(cfg, volumes[size], tmp_path / f"r{size}{real_turns}")
        text = caplog.text
        assert ("2 whole volume(s)" in text) == warned, text
        assert ("real_turns=true lessens" in text) == (warned and not real_turns), text
    caplog.clear()
    Trainer(tiny(subtomo_size=16, crop_size=16, adv_weight=0.0), volumes[16], tmp_path / "no_e")
    assert "whole volume" not in caplog.text  # no energy model, nothing to learn by heart
    monkeypatch.setenv("RANK", "1")  # the second rank of a torchrun job: only rank 0 says it
    monkeypatch.setenv("WORLD_SIZE", "2")
    caplog.clear()
    cfg = tiny(subtomo_size=16, crop_size=16, n_subtomos=1, steps=1)
    Trainer(cfg, volumes[16], tmp_path / "r1")
    assert "whole volume" not in caplog.text


def bias_check_config(**overrides):
    """The bias check's settings at tiny sizes: 16^3 crops of 24^3 volumes, the tapered
    operator, a small E."""
    from support import tiny_config

    return tiny_config(
        subtomo_size=24,
        crop_size=16,
        adv_margin=0,
        crop_operator="tapered",
        crop_taper=4,
        energy_features=(4, 8),
        energy_fc_features=(8,),
        **overrides,
    )


def test_energy_trained_against_the_truth_stays_near_chance():
    """The bias check at tiny sizes: E learns to tell a generator that fills nothing, but
    not a perfect one, through the tapered operator."""
    xs, ys = smooth_volumes(12, 24)
    cfg = bias_check_config()
    truth = energy_bias(cfg, xs, ys, "truth", steps=200, pairs=100)
    identity = energy_bias(cfg, xs, ys, "identity", steps=200, pairs=100)
    assert truth.accuracy <= 0.6 and identity.accuracy >= 0.75, (truth, identity)


def test_the_operators_settings_are_checked(tmp_path, tiny):
    with pytest.raises(InputError, match="real_wedge"):
        tiny(crop_operator="tapered", real_wedge=False)
    with pytest.raises(InputError, match="crop_taper"):
        cfg = tiny(crop_operator="tapered", crop_taper=9)
        Trainer(cfg, [smooth_volumes(1, 24)[1][0].numpy()], tmp_path)


def test_the_papers_protocol_runs_with_every_new_option(tmp_path, volume, tiny, run_files):
    """E on the generator's own pass with eps_g, lambda's decay, a local critic, R1 and
    instance noise, the tapered operator, the data term: finite losses."""
    cfg = tiny(
        steps=4,
        crop_size=24,
        adv_margin=0,
        crop_operator="tapered",
        crop_taper=6,
        adv_source="generator",
        lambda_min=0.0,
        lambda_hold=0.25,
        energy_arch="local",
        energy_norm="instance",
        energy_features=(4, 4, 8, 8),
        r1_weight=1.0,
        instance_noise=0.1,
    )
    res = train(cfg, [volume], tmp_path / "run", progress=False)
    rows = run_files.rows(tmp_path / "run")
    assert res.step == 4 and len(rows) == 4
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows)  # finite, no NaN
    lam = [float(r["lambda"]) for r in rows]  # held for a quarter of the run, then decaying
    assert lam[:2] == [1.0, 1.0] and lam[3] < lam[2] < 1.0 and float(rows[-1]["adv_g"]) > 0


def test_each_sample_goes_through_its_own_tilt_ranges_operator(tmp_path, volume, tiny):
    ranges = [(-60.0, 60.0), (-50.0, 56.0)]
    clean = torch.as_tensor(volume)
    volumes = [apply_missing_wedge(clean, *r).numpy() for r in ranges]
    cfg = tiny(crop_operator="tapered", crop_taper=4, batch_size=6)
    t = Trainer(cfg, volumes, tmp_path, tilt_ranges=ranges)
    batch, _ = t.next_batch(0.0)
    out = t.method.crop_tm(batch.y, batch)
    c = t.data.crop_size
    for k, i in enumerate(batch.index):
        want = CropWedge.make(c, ranges[t.data.origins[i][0]], "tapered", 4, cfg.wedge_guard)
        torch.testing.assert_close(out[k], want(batch.y[k]))
    t.training_step(0.0)  # a step runs with per-sample operators


def test_auto_is_hard_on_whole_volumes_and_tapered_on_crops(tmp_path, tiny):
    """The default operator: exact (hard) where every crop is a whole volume, the unbiased
    tapered one on crops of larger volumes, with a taper that fits the crop."""
    (_,), (y,) = smooth_volumes(1, 24, seed=2)
    whole = Trainer(tiny(subtomo_size=24, crop_size=24, n_subtomos=1), [y.numpy()], tmp_path / "w")
    assert whole.data.whole_volumes and whole.method.crop_tm.kind == "hard"
    crops = Trainer(tiny(), [y.numpy()], tmp_path / "c")  # 16^3 crops of 20^3 subtomograms
    op = crops.method.crop_tm
    assert not crops.data.whole_volumes and (op.kind, op.taper) == ("tapered", 4)
    assert torch.equal(op.ops[0].mask, CropWedge.make(16, TILT, "tapered", 4, 3.0).mask)
    big = tiny(subtomo_size=96, crop_size=64)
    assert resolve_operator(big, 64, whole=False) == ("tapered", 16)
    assert resolve_operator(big, 64, whole=True) == ("hard", 0)
    assert resolve_operator(tiny(real_wedge=False), 16, whole=False)[0] == "hard"
    # a chosen operator is kept as given
    assert resolve_operator(tiny(crop_operator="hard"), 16, whole=False) == ("hard", 16)
    assert resolve_operator(tiny(crop_operator="tapered", crop_taper=8), 16, True) == (
        "tapered",
        8,
    )


def test_run_log_names_the_operator_and_old_runs_keep_the_hard_one(tmp_path, volume, tiny):
    from cryogen.train.config import saved_config_fill

    train(tiny(steps=1), [volume], tmp_path / "run", progress=False)
    log = (tmp_path / "run" / "run.log").read_text()
    assert "wedge operator of the energy model and data term: tapered (4-voxel taper" in log
    # a run saved before the setting existed trained with the hard operator
    assert saved_config_fill({"method": "cryogen"})["crop_operator"] == "hard"
    assert saved_config_fill({"method": "cryogen"})["fake_noise"] == "none"  # clean fakes


def test_on_noisy_half_sets_e_judges_the_fill_once_the_fakes_carry_the_noise():
    """With half-sets the real samples are noisy: E tells even a perfect generator's clean
    fakes from them by the noise alone.  With ``fake_noise="halves"`` (the default) the
    fakes carry the half-sets' noise and E is back near chance on the truth's fakes, while
    it still tells a denoiser that fills nothing (the wedged truth)."""
    xs, ys = smooth_volumes(12, 24)
    g = torch.Generator().manual_seed(5)

    def half(y):  # the same wedged signal, its own noise in the measured region
        return y + 0.5 * apply_missing_wedge(torch.randn(y.shape, generator=g), *TILT)

    firsts, seconds = [half(y) for y in ys], [half(y) for y in ys]
    acc = {}
    for fake_noise in ("none", "default"):
        chosen = {} if fake_noise == "default" else {"fake_noise": fake_noise}
        cfg = bias_check_config(**chosen)
        for fakes in ("truth", "identity"):
            r = energy_bias(cfg, xs, firsts, fakes, steps=200, pairs=100, others=seconds)
            acc[fake_noise, fakes] = r.accuracy
    assert acc["none", "truth"] >= 0.75, acc
    # the default setup passes the bias check: its fakes carry the half-sets' noise
    assert cfg.fake_noise == "halves"
    assert acc["default", "truth"] <= 0.6 and acc["default", "identity"] >= 0.75, acc
