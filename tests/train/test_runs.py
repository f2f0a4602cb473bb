"""A run from start to end: updates skipped for non-finite gradients and divergence,
seeds, resume (equal to an uninterrupted run), Ctrl-C, checkpoints, and the run folder's
rules."""

import csv
import math
import os
import signal

import pytest
import torch

from cryogen.errors import CryogenError, InputError, OutputError
from cryogen.model import load_checkpoint
from cryogen.train import LOSS_COLUMNS, TrainConfig, networks, train
from cryogen.train.optim import MAX_SKIPPED_IN_A_ROW


def _poison_gradients(monkeypatch, bad_calls):
    """Make the generator's first parameter get a NaN gradient on the listed backward calls."""
    build = networks.build_generator
    calls = {"n": 0}

    def poisoned(config):
        g = build(config)

        def hook(grad):
            calls["n"] += 1
            return grad * float("nan") if bad_calls(calls["n"]) else grad

        next(g.parameters()).register_hook(hook)
        return g

    monkeypatch.setattr(networks, "build_generator", poisoned)
    return calls


def test_non_finite_gradient_skips_the_update(
    tmp_path, volume, tiny, run_files, monkeypatch, caplog
):
    _poison_gradients(monkeypatch, lambda n: n == 2)
    cfg = tiny(method="isonet", steps=4)
    with caplog.at_level("WARNING", logger="cryogen.train.optim"):
        res = train(cfg, [volume], tmp_path / "run", progress=False)
    assert res.step == 4 and not res.interrupted
    assert "step 2: non-finite gradient, update skipped" in caplog.text
    norms = [r["grad_norm"] for r in run_files.rows(tmp_path / "run")]
    assert norms[1] == "" and all(float(v) > 0 for i, v in enumerate(norms) if i != 1)
    for v in run_files.weights(tmp_path / "run" / "last.pt").values():
        assert torch.isfinite(v).all()


def test_persistent_non_finite_gradients_stop_training(tmp_path, volume, tiny, monkeypatch):
    _poison_gradients(monkeypatch, lambda n: n >= 3)
    cfg = tiny(method="isonet", steps=MAX_SKIPPED_IN_A_ROW + 10)
    with pytest.raises(CryogenError, match="non-finite gradients in 21 steps in a row"):
        train(cfg, [volume], tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "last.pt").exists()


def test_same_seed_same_weights(tmp_path, volume, tiny, run_files):
    cfg = tiny(steps=3)
    train(cfg, [volume], tmp_path / "a", progress=False)
    train(cfg, [volume], tmp_path / "b", progress=False)
    run_files.assert_same_state(
        run_files.weights(tmp_path / "a" / "last.pt"), run_files.weights(tmp_path / "b" / "last.pt")
    )
    assert run_files.loss_rows(tmp_path / "a") == run_files.loss_rows(tmp_path / "b")
    train(tiny(steps=3, seed=1), [volume], tmp_path / "c", progress=False)
    other = run_files.weights(tmp_path / "c" / "last.pt")
    assert any(
        not torch.equal(v, other[k])
        for k, v in run_files.weights(tmp_path / "a" / "last.pt").items()
    )


@pytest.mark.parametrize(
    "method, extra",
    [
        ("cryogen", {"r1_weight": 1.0, "instance_noise": 0.1, "sigma": 0.05, "dropout": 0.1}),
        ("isonet", {"rounds": 3, "isonet_noise_start": 0.0, "refill_every": None}),
        ("isonet", {"rounds": 3, "refill_every": 2}),
    ],
)
def test_resume_equals_uninterrupted(tmp_path, volume, tiny, run_files, method, extra):
    cfg = tiny(method=method, steps=6, **extra)
    full = train(cfg, [volume], tmp_path / "full", progress=False)

    def stop_at_3(info):
        return info["step"] == 3

    part = train(cfg, [volume], tmp_path / "part", progress=False, callback=stop_at_3)
    assert part.interrupted and part.step == 3
    resumed = train(cfg, [volume], tmp_path / "part", progress=False, resume=True)
    assert resumed.step == 6 and full.step == 6
    assert run_files.loss_rows(tmp_path / "full") == run_files.loss_rows(tmp_path / "part")
    keys = ["generator"] + (["energy", "opt_d"] if method == "cryogen" else [])
    a, b = (
        load_checkpoint(tmp_path / "full" / "last.pt"),
        load_checkpoint(tmp_path / "part" / "last.pt"),
    )
    for k in keys[:2]:
        run_files.assert_same_state(a[k], b[k])
    if method == "isonet":
        assert torch.equal(a["isonet"]["filled"], b["isonet"]["filled"])


def test_resume_upgrades_an_older_losses_header(tmp_path, volume, tiny):
    """A run logged before a column was added resumes under today's header."""
    cfg = tiny(method="isonet", steps=4)
    train(cfg, [volume], tmp_path / "r", progress=False, callback=lambda i: i["step"] == 2)
    path = tmp_path / "r" / "losses.csv"
    with path.open(newline="") as fh:
        old = [row[:-1] for row in csv.reader(fh)]  # as written without the last column
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(old)
    train(cfg, [volume], tmp_path / "r", progress=False, resume=True)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(LOSS_COLUMNS) and [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert len(rows[1]) == len(LOSS_COLUMNS) - 1 and len(rows[4]) == len(LOSS_COLUMNS)


def test_resume_a_checkpoint_without_the_energy_models_streams(tmp_path, volume, tiny, run_files):
    """A checkpoint written before E's draws had their own streams resumes; those streams
    then start from the seed, as in a fresh run (the others continue)."""
    from cryogen.model import save_checkpoint

    cfg = tiny(steps=4)
    train(cfg, [volume], tmp_path / "r", progress=False, callback=lambda i: i["step"] == 2)
    ck = load_checkpoint(tmp_path / "r" / "last.pt")
    assert set(ck["rng"]["named_numpy"]) == {"step", "e_step"}
    del ck["rng"]["named_numpy"]["e_step"], ck["rng"]["named_torch"]["e_noise"]
    save_checkpoint(tmp_path / "r" / "last.pt", ck)
    res = train(cfg, [volume], tmp_path / "r", progress=False, resume=True)
    assert res.step == 4
    assert [r["step"] for r in run_files.rows(tmp_path / "r")] == ["1", "2", "3", "4"]


def test_ctrl_c_writes_a_checkpoint_and_resumes(tmp_path, volume, tiny, run_files):
    cfg = tiny(steps=4)
    train(cfg, [volume], tmp_path / "full", progress=False)

    def interrupt(info):
        if info["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    res = train(cfg, [volume], tmp_path / "run", progress=False, callback=interrupt)
    assert res.interrupted and res.step == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    train(cfg, [volume], tmp_path / "run", progress=False, resume=True)
    assert run_files.loss_rows(tmp_path / "full") == run_files.loss_rows(tmp_path / "run")


def test_checkpoint_contents(tmp_path, volume, tiny, run_files):
    cfg = tiny(steps=4, checkpoint_every=2)
    train(cfg, [volume], tmp_path / "run", voxel_size=7.5, progress=False)
    full = load_checkpoint(tmp_path / "run" / "last.pt")
    for key in (
        "config",
        "method",
        "tilt_min",
        "tilt_max",
        "voxel_size",
        "normalisation",
        "crop_size",
        "step",
        "elapsed_s",
        "generator",
        "energy",
        "opt_g",
        "opt_d",
        "scaler_g",
        "rng",
        "data",
        "isonet",
    ):
        assert key in full, key
    assert full["kind"] == "full" and full["step"] == 4 and full["voxel_size"] == 7.5
    assert (full["tilt_min"], full["tilt_max"]) == (-60.0, 60.0)
    assert TrainConfig.model_validate(full["config"]) == cfg
    assert math.isclose(full["normalisation"]["std"], float(volume.std()), rel_tol=1e-5)
    assert set(full["rng"]) >= {"torch", "numpy", "python", "named_numpy", "named_torch"}
    snaps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert snaps == ["step_000002.pt", "step_000004.pt"]
    snap = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_000002.pt")
    assert snap["kind"] == "generator" and "energy" not in snap and snap["step"] == 2
    run_files.assert_same_state(
        snap["generator"] if False else full["generator"], full["generator"]
    )
    saved = TrainConfig.model_validate_json((tmp_path / "run" / "config.json").read_text())
    assert saved == cfg


def test_run_folder_rules(tmp_path, volume, tiny, run_files):
    cfg = tiny(steps=2)
    train(cfg, [volume], tmp_path / "run", progress=False)
    with pytest.raises(OutputError, match="already holds a training run"):
        train(cfg, [volume], tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="differ from the run's"):
        train(tiny(steps=4, lr=2e-3), [volume], tmp_path / "run", progress=False, resume=True)
    with pytest.raises(InputError, match="nothing to resume"):
        train(cfg, [volume], tmp_path / "empty", progress=False, resume=True)
    # a longer budget may be given on resume
    res = train(tiny(steps=3), [volume], tmp_path / "run", progress=False, resume=True)
    assert res.step == 3
    res = train(cfg, [volume], tmp_path / "run", progress=False, overwrite=True)
    assert res.step == 2 and len(run_files.rows(tmp_path / "run")) == 2
