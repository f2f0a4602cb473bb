"""The training methods behind one step interface: CryoGEN (Algorithm 1) and the
IsoNet-style baseline; every variant gives finite losses, the energy model sees what the
generator fills, the subtomogram-level wedge treats the truth as real data, and CryoGEN
without its energy and data terms trains the IsoNet-style weights bit for bit."""

import json
import math

import numpy as np
import pytest
import torch

from cryogen.model import build_energy
from cryogen.rotations import WEDGE_ROTATIONS, rotate, rotate_box, rotate_inverse
from cryogen.train import SubtomoDataset, Trainer, train
from cryogen.train.methods import Batch, CryoGEN, EnergyDraws
from cryogen.train.methods import cryogen as cryogen_step
from cryogen.wedge import apply_missing_wedge, missing_wedge_mask, wedge_operator


def batch_at(trainer, offset, rotations=(0,)):
    """A one-crop batch of subtomogram 0 at ``offset``."""
    y = trainer.data.crop(trainer.data.subtomos, [0], [offset])
    return Batch(
        step=0,
        index=[0],
        offsets=[offset],
        y=y,
        rotations=list(rotations),
        u=1.0,
        wedge=trainer.wedges.crop,
    )


@pytest.mark.parametrize(
    "method, adv_loss, extra",
    [
        pytest.param(
            "cryogen",
            "bce",
            {"r1_weight": 1.0, "instance_noise": 0.1, "sigma": 0.05},
            marks=pytest.mark.slow,
        ),
        ("cryogen", "hinge", {"consistency_target": "generator", "consistency_forward": "reuse"}),
        ("cryogen", "wgan-gp", {"d_steps": 2}),
        (
            "cryogen",
            "bce",
            {
                "amp": "bf16",
                "consistency_target": "wedge_filled",
                "gan_every": 2,
                "refill_every": 2,
            },
        ),
        (
            "cryogen",
            "bce",
            {"refill_every": 2, "data_margin": 2, "deep_supervision": True, "arch": "unetpp"},
        ),
        ("cryogen", "bce", {"adv_source": "generator", "gan_every": 2}),
        ("cryogen", "bce", {"adv_wedge": "subtomogram", "batch_size": 2}),
        ("cryogen", "hinge", {"adv_wedge": "subtomogram", "adv_source": "generator"}),
        ("cryogen", "bce", {"data_wedge": "subtomogram", "data_margin": 2}),
        ("isonet", "bce", {"rounds": 2, "isonet_noise_start": 0.0, "refill_every": None}),
        ("isonet", "bce", {"rounds": 2, "refill_every": 1}),
    ],
)
def test_each_method_gives_finite_losses(
    tmp_path, volume, tiny, run_files, method, adv_loss, extra
):
    cfg = tiny(method=method, adv_loss=adv_loss, steps=4, **extra)
    res = train(cfg, [volume], tmp_path / "run", progress=False)
    assert res.step == 4 and not res.interrupted
    rows = run_files.rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    terms = ["loss", "consistency"] + (["data", "adv_g", "d_loss"] if method == "cryogen" else [])
    for t in terms:  # terms computed every `gan_every` steps are blank in between
        values = [float(r[t]) for r in rows if r[t] != ""]
        assert values and all(math.isfinite(v) for v in values), (t, rows)
    assert all(math.isfinite(float(r["grad_norm"])) and float(r["grad_norm"]) > 0 for r in rows)
    if method == "isonet":
        assert {r["round"] for r in rows} == {"0", "1"}  # the noise's round advanced
    assert (tmp_path / "run" / "losses.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == method


@pytest.mark.parametrize("adv_rotate", [True, False])
def test_energy_model_sees_the_generators_fill(tmp_path, volume, tiny, monkeypatch, adv_rotate):
    """With adv_source="consistency", E judges T_M(R2 out_rot): the gradient it sends back
    reaches the part of g's output in its own missing wedge (the fill), which T_M(out_rot)
    alone never does."""
    calls, fakes = [], []
    real_rot, real_update = cryogen_step.rotate_batch, CryoGEN.update_energy

    def rot(x, rots, inverse=False):
        out = real_rot(x, rots, inverse)
        calls.append({"x": x, "rots": list(rots), "inverse": inverse, "out": out})
        return out

    def update_energy(self, real, fake, u_instance, step):
        fakes.append(fake)
        return real_update(self, real, fake, u_instance, step)

    monkeypatch.setattr(cryogen_step, "rotate_batch", rot)
    monkeypatch.setattr(CryoGEN, "update_energy", update_energy)
    cfg = tiny(steps=1, adv_source="consistency", adv_rotate=adv_rotate, crop_operator="hard")
    train(cfg, [volume], tmp_path / "run", progress=False)
    assert len(calls) == (3 if adv_rotate else 2) and calls[1]["inverse"]
    out_rot = calls[1]["x"]  # g's output in the rotated frame (the 2nd call rotates it back)
    mask = missing_wedge_mask(tuple(out_rot.shape[2:]), -60, 60)
    if adv_rotate:
        assert calls[2]["x"] is out_rot and calls[2]["rots"][0] in WEDGE_ROTATIONS

    def view(x):  # what E is shown of out_rot
        return wedge_operator(real_rot(x, calls[2]["rots"]) if adv_rotate else x, mask)

    assert torch.allclose(fakes[0], view(out_rot).detach())
    # the gradient of any score of the fake w.r.t. out_rot, in out_rot's own missing wedge
    x = out_rot.detach().clone().requires_grad_(True)
    (view(x) * torch.randn_like(x)).sum().backward()
    power = torch.fft.rfftn(x.grad, dim=(-3, -2, -1)).abs().pow(2)  # the mask's layout
    in_wedge = power[..., mask == 0].sum() / power.sum()
    assert in_wedge > 0.05 if adv_rotate else in_wedge < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cryogen", "isonet"])
def test_generator_loss_falls(tmp_path, volume, tiny, method):
    """The consistency loss over all 20 rotations of one fixed crop falls with training."""
    # one crop (subtomogram = crop), no refill within the run, constant lr
    cfg = tiny(
        method=method,
        steps=60,
        lr=3e-3,
        warmup_fraction=0.0,
        adv_weight=0.0,
        features=(8, 16),
        sigma_g=0.0,
        sigma_h=0.0,
        lambda_min=1.0,
        n_subtomos=1,
        subtomo_size=16,
        batch_size=2,
        lr_final_factor=1.0,
        rounds=1,
        refill_every=None,
        gan_every=1,
        isonet_noise_max=0.0,
    )
    res = train(cfg, [volume], tmp_path / "run", progress=False)
    ds = SubtomoDataset(
        [volume],
        subtomo_size=16,
        n_subtomos=1,
        crop_size=16,
        seed=int(np.random.SeedSequence(cfg.seed).spawn(3)[0].generate_state(1)[0]),
    )
    y = ds.subtomos[:1, None]  # (1, 1, 16, 16, 16), the only crop
    mask = missing_wedge_mask((16, 16, 16), -60, 60)

    def loss(g):
        with torch.no_grad():
            return float(
                np.mean(
                    [
                        torch.nn.functional.mse_loss(
                            rotate_inverse(g(wedge_operator(rotate(y, r), mask)), r), y
                        )
                        for r in WEDGE_ROTATIONS
                    ]
                )
            )

    before, after = loss(lambda t: t), loss(res.generator.float())  # untrained g = identity
    assert after < 0.85 * before, (before, after)


def test_subtomogram_fakes_of_the_truth_are_real_samples(tmp_path, tiny):
    """adv_wedge="subtomogram": the fake made of the true crop is a crop of the wedged,
    rotated subtomogram, so with no rotation it *is* the real sample; the gradient reaches
    the estimate; data_wedge="subtomogram" scores the truth zero.  On the crop (the
    paper's T_M) the truth's fake is not a real sample and its data term is not zero."""
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 24, 24, 24, generator=g), 3, 1, 1)[0, 0]
    y = apply_missing_wedge(x, -60, 60)  # the whole volume is the subtomogram
    cfg = tiny(adv_wedge="subtomogram", n_subtomos=1, steps=1, crop_operator="hard")
    t = Trainer(cfg, [y], tmp_path / "r")
    m = t.method  # the CryoGEN step
    truth = t.data.normalisation.apply(x)
    t.refill.filled = truth[None].clone()  # a perfect refill
    o, c, s = (3, 5, 8), 16, 24
    batch = batch_at(t, o)
    est = truth[o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c][None, None].clone()
    est.requires_grad_(True)
    real = m.real(batch)
    assert torch.allclose(real, t.data.crop(t.data.subtomos, [0], [o]), atol=1e-5)  # T_M y = y
    identity = 0  # CUBE_ROTATIONS[0]
    fake = m.fake(est, lambda: est, batch, [identity])
    assert torch.allclose(fake, real, atol=1e-4)
    for r in WEDGE_ROTATIONS[:6]:
        fake = m.fake(est, lambda: est, batch, [r])
        z, yy, xx = rotate_box(o, c, s, r)
        wedged = wedge_operator(rotate(truth, r)[None, None], t.wedges.subtomogram)[0, 0]
        assert torch.allclose(fake[0, 0], wedged[z : z + c, yy : yy + c, xx : xx + c], atol=1e-4)
    fake.pow(2).sum().backward()
    assert est.grad is not None and float(est.grad.abs().max()) > 0
    # the data term with T_M on the subtomogram is zero at the truth, on the crop it is not
    m.e_on = False  # no E this step: the data term alone
    data = {}
    for where in ("subtomogram", "crop"):
        t.cfg.data_wedge, row = where, {}
        y_crop = batch.y
        m.energy_and_data(est.detach(), None, batch, EnergyDraws(1.0, 1.0, 1.0), 0.0, row)
        data[where] = row["data"] / float(y_crop.pow(2).mean())
    assert data["subtomogram"] < 1e-8 and data["crop"] > 0.02, data
    m.e_on = True
    t.cfg.adv_wedge = "crop"  # the paper's: T_M of the crop
    crop_fake = m.fake(est.detach(), lambda: est.detach(), batch, [identity])
    crop_real = m.real(batch)
    gap = (crop_fake - crop_real).pow(2).mean() / crop_real.pow(2).mean()
    assert gap > 0.02, float(gap)


def test_energy_model_waits_for_d_start(tmp_path, volume, tiny, run_files):
    # d_start 0.5 of 6 steps: E neither learns nor is scored in steps 1-3, then both
    cfg = tiny(steps=6, adv_start=0.5, d_start=0.5)
    run = tmp_path / "run"
    train(cfg, [volume], run, progress=False, callback=lambda info: info["step"] == 3)
    e3 = run_files.weights(run / "last.pt", "energy")
    train(cfg, [volume], run, progress=False, resume=True)
    e6 = run_files.weights(run / "last.pt", "energy")
    rows = run_files.rows(run)
    assert [r["d_loss"] == "" for r in rows] == [True] * 3 + [False] * 3
    assert all(r["data"] != "" for r in rows)  # the data term does not wait for E
    torch.manual_seed(cfg.seed + 1)  # the initial E, built as the trainer builds it
    e0 = build_energy(cfg).state_dict()
    assert e0.keys() == e3.keys()
    assert all(torch.equal(e0[k], e3[k]) for k in e0)
    assert any(not torch.equal(e3[k], e6[k]) for k in e3)


@pytest.mark.slow
def test_cryogen_without_energy_and_data_terms_is_the_isonet_style_method(
    tmp_path, volume, tiny, run_files
):
    # CryoGEN's consistency term on refilled targets is the IsoNet-style step: same crops,
    # rotations and noise (E's draws have their own streams), the loss in the rotated frame
    # instead of the original one; with E and the data term off the weights are identical
    base = dict(steps=12, refill_every=4, isonet_noise_start=0.0, rounds=3)
    iso = tiny(method="isonet", **base)
    cg = tiny(method="cryogen", adv_weight=0.0, data_weight=0.0, **base)
    assert cg.sigma_h == iso.isonet_noise_max and cg.sigma_h_schedule == "rounds"
    train(iso, [volume], tmp_path / "iso", progress=False)
    train(cg, [volume], tmp_path / "cg", progress=False)
    run_files.assert_same_state(
        run_files.weights(tmp_path / "iso" / "last.pt"),
        run_files.weights(tmp_path / "cg" / "last.pt"),
    )
    # and with E on, the IsoNet-style run's crops, rotations and consistency noise stay
    cge = tiny(method="cryogen", adv_start=0.5, data_weight=0.0, **base)
    train(cge, [volume], tmp_path / "cge", progress=False)
    noise = [[r["noise"] for r in run_files.rows(tmp_path / d)] for d in ("iso", "cge")]
    assert noise[0] == noise[1] and float(noise[0][-1]) > 0
    a = run_files.weights(tmp_path / "iso" / "last.pt")
    b = run_files.weights(tmp_path / "cge" / "last.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # E's term changed the weights


def test_a_batch_applies_each_samples_own_wedge():
    """``Batch.tm`` with one mask per sample is the per-sample ``T_M`` (the seam for
    tomograms of different tilt ranges in one batch)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 12, 12, 12, generator=g)
    masks = [missing_wedge_mask((12, 12, 12), t0, t1) for t0, t1 in ((-60, 60), (-40, 52))]
    batch = Batch(
        step=0,
        index=[0, 1],
        offsets=[(0, 0, 0)] * 2,
        y=x,
        rotations=[0, 0],
        u=1.0,
        wedge=torch.stack(masks)[:, None],
    )
    out = batch.tm(x)
    for b in range(2):
        torch.testing.assert_close(out[b], wedge_operator(x[b], masks[b]))
    assert not torch.allclose(out[1], wedge_operator(x[1], masks[0]))
