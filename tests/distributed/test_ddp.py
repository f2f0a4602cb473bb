"""Data-parallel training and prediction with ``torchrun`` on the CPU (gloo, 2 ranks).

The launches run this file as their worker script (``python tests/distributed/test_ddp.py
MODE DIR``, see ``_worker_main``); the tests compare what the ranks wrote with
single-process runs done here.  Three launches (one worker script, one ``-m cryogen
train``, one that hangs a rank) keep the file within about a minute of one CPU core.

What is exactly comparable (the tolerance of ``test_ddp_matches_single_process``)
---------------------------------------------------------------------------------
Two ranks with batch 1 equal one process with batch 2 when they see the same crops, the
same rotations and the same noise: every loss term is a mean over the batch, and DDP
averages the ranks' gradients, so the update is the same in exact arithmetic.  The worker
replaces the random streams with a script (rank ``j`` gets element ``j`` of each global
batch) and switches the noise terms off (a noise tensor drawn for a batch of 2 cannot be
split into two draws of 1).  What remains is float32 summation order (a batch-2 gradient
sums both crops inside each convolution's backward; DDP averages two batch-1 gradients), a
relative difference of order 1e-7 in each gradient.  Measured after 3 steps: 3e-8 (max
absolute difference over both networks' parameters and E's spectral-norm vectors), while
the negative control (one process that sees only rank 0's crops) differs by 1.5e-3.  The
tolerance, 2e-6, is ~70x the measured difference and ~700x below the control, so the test
passes on other BLAS/CPU builds yet fails if the ranks' gradients were not averaged or the
crops not split.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from cryogen import distributed
from cryogen.io import read_volume, write_volume
from cryogen.model import load_checkpoint
from cryogen.predict import PredictOptions
from cryogen.tiling import sliding_window_inference
from cryogen.train import TrainConfig, Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).resolve()
TESTS = HERE.parents[1]  # on the workers' path too: they import ``support``
TILES = PredictOptions(tile=16, overlap=4)
STEPS_EQ = 3  # steps of the scripted (DDP = single process) comparison
SCHEDULE_SEED = 1234
TOL = 2e-6

# tiny networks and data (a third level: 20^3 subtomograms of 16^3 crops), CryoGEN's
# energy and data terms on at every step; no noise anywhere (see the module docstring)
BASE = {
    **support.TINY_TRAIN,
    "features": (4, 8, 16),
    "adv_start": 0.0,
    "adv_ramp": 0.0,
    "adv_weight": 0.01,
    "data_weight": 1.0,
    "gan_every": 1,
    "checkpoint_every": 1000,
    "checkpoint_minutes": None,
}
QUIET = dict(sigma=0.0, sigma_g=0.0, sigma_h=0.0, instance_noise=0.0, r1_weight=0.1)


# ------------------------------------------------------------------------------ helpers
class ScriptedRNG:
    """Stands in for a ``numpy.random.Generator``: ``integers`` from a list, ``random`` 0.5."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.i = 0
        self.bit_generator = np.random.PCG64(0)  # only for the checkpoints' RNG capture

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        v = self.values[self.i]
        self.i += 1
        return int(low + v % (high - low))

    def random(self) -> float:
        return 0.5


def schedule(steps: int, batch: int) -> np.ndarray:
    """``(steps, batch, 6)`` draws: subtomogram, crop z, y, x, rotation R, and the second
    rotation R2 under which E judges the estimate (``adv_rotate``) (any large ints)."""
    return np.random.default_rng(SCHEDULE_SEED).integers(0, 2**30, size=(steps, batch, 6))


def scripted_streams(sched: np.ndarray) -> tuple[ScriptedRNG, ScriptedRNG, ScriptedRNG]:
    """Crop, step and E's streams that make ``SubtomoDataset.draw`` and the rotations follow
    ``sched`` ``(steps, b, 6)``: per step ``b`` indices, then ``3 b`` offsets; ``b`` rotations
    (the step's stream), then ``b`` second rotations (E's stream)."""
    data, step, e_step = [], [], []
    for per_step in sched:
        data += [int(e[0]) for e in per_step]
        for e in per_step:
            data += [int(e[1]), int(e[2]), int(e[3])]
        step += [int(e[4]) for e in per_step]
        e_step += [int(e[5]) for e in per_step]
    return ScriptedRNG(data), ScriptedRNG(step), ScriptedRNG(e_step)


def make_trainer(cfg: TrainConfig, vol: np.ndarray, run_dir: Path, ctx=None) -> Trainer:
    return Trainer(cfg, [vol], run_dir, dist=ctx)


def script(trainer: Trainer, sched: np.ndarray) -> None:
    """Make ``trainer`` draw its crops and rotations from ``sched``."""
    trainer.data.rng, trainer.streams.step, trainer.streams.e_step = scripted_streams(sched)


def phantom(n: int = 24, seed: int = 0) -> np.ndarray:
    from cryogen.wedge import apply_missing_wedge

    z, y, x = torch.meshgrid(*(torch.arange(float(n)),) * 3, indexing="ij")
    v = ((z - 12) ** 2 + (y - 10) ** 2 + (x - 13) ** 2 < 25).float()
    v[4:10, 6:20, 14:20] = 1.0
    g = torch.Generator().manual_seed(seed)
    return (apply_missing_wedge(v, -60, 60) + 0.05 * torch.randn(v.shape, generator=g)).numpy()


def both_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Weights of both networks of a ``Trainer`` (``g.*`` and ``e.*``)."""
    nets = trainer.networks
    out = {f"g.{k}": v.detach().cpu().clone() for k, v in nets.g.state_dict().items()}
    out.update({f"e.{k}": v.detach().cpu().clone() for k, v in nets.e.state_dict().items()})
    return out


def state_of(trainer_or_result) -> dict[str, torch.Tensor]:
    """The generator's weights of a ``Trainer`` or a ``TrainResult``."""
    obj = trainer_or_result
    g = obj.networks.g if hasattr(obj, "networks") else obj.generator
    return {k: v.detach().cpu().clone() for k, v in g.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def nonlinear_predictor(net):
    @torch.no_grad()
    def f(tiles: torch.Tensor) -> torch.Tensor:
        return net(tiles) * 0.5 + tiles.square() * 0.1  # nonlinear, a real network inside

    return f


def launch(args: list[str], tmp: Path, *, timeout: float = 240, env: dict | None = None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": path,
        distributed.TIMEOUT_ENV: "60",
        **(env or {}),
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd + args,
        cwd=tmp,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.perf_counter() - t0


# ------------------------------------------------------------------------------ worker
def _hang_worker(root: Path) -> None:
    """Rank 1 stops answering inside training (its callback sleeps): rank 0 must fail with
    the timeout's message instead of waiting for ever."""
    from cryogen.train import train

    out = root / "out"
    vol = phantom()
    rank = int(os.environ["RANK"])

    def cb(info):
        if rank == 1 and info["step"] == 2:
            # stuck for good; torchrun's SIGTERM (after rank 0 fails) ends it at once
            # (a rank stuck in C code would be killed by torchrun 30 s later)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            (out / "stuck.txt").write_text(str(time.time()))
            time.sleep(120)
        return False

    cfg = TrainConfig.from_sources("cpu", overrides={**BASE, "steps": 6})
    out.mkdir(exist_ok=True)
    try:
        train(cfg, [vol], root / "runs" / "hang", progress=False, callback=cb)
    except distributed.DistributedError as exc:
        (out / "failed.txt").write_text(str(time.time()))
        print(f"DistributedError: {exc}", flush=True)
        sys.exit(3)
    sys.exit(0)


def _record_writes(runs: Path) -> list[str]:
    """Record every file this process creates, renames or deletes under ``runs``."""
    events: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode_, flags = args[1], args[2]
            writes = (
                any(c in mode_ for c in "wax+")
                if isinstance(mode_, str)
                else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            )
            if writes and str(runs) in os.fsdecode(args[0]):
                events.append(f"open {args[0]} {mode_}")
        elif event in ("os.rename", "os.remove", "os.mkdir", "shutil.rmtree", "os.rmdir"):
            if any(str(runs) in os.fsdecode(a) for a in args if isinstance(a, (str, Path))):
                events.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    return events


def _train_parts(ctx, root: Path, vol: np.ndarray, results: dict):
    """(a)-(c): the training runs of each rank; returns the 4-step run's result."""
    from cryogen.train import train

    rank, out, runs = ctx.rank, root / "out", root / "runs"
    # (a) scripted schedule: batch 1 per rank, rank j = element j of a batch of 2
    cfg = TrainConfig.from_sources(
        "cpu", overrides={**BASE, **QUIET, "steps": STEPS_EQ, "batch_size": 1}
    )
    tr = make_trainer(cfg, vol, runs / "eq", ctx)
    script(tr, schedule(STEPS_EQ, 2)[:, rank : rank + 1])
    tr.run(progress=False, callback=None)
    torch.save(both_of(tr), out / f"eq_rank{rank}.pt")

    # (b) random crops, noise and dropout: a 4-step run; the same run with a Ctrl-C
    # that reaches rank 1 only (during step 2), then --resume
    file = root / "cfg.json"
    cfg4 = TrainConfig.from_sources(None, file, {"steps": 4})
    full = train(cfg4, [vol], runs / "full", progress=False)
    torch.save(state_of(full), out / f"full_rank{rank}.pt")

    def ctrl_c(info):
        if rank == 1 and info["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return False

    part = train(cfg4, [vol], runs / "res", progress=False, callback=ctrl_c)
    results["interrupted"] = [part.interrupted, part.step]
    res = train(cfg4, [vol], runs / "res", resume=True, progress=False)
    torch.save(state_of(res), out / f"res_rank{rank}.pt")

    # (c) a wall-clock budget: rank 0's clock decides, both ranks stop on the same step
    budget = train(
        TrainConfig.from_sources(None, file, {"minutes": 0.02}),
        [vol],
        runs / "budget",
        progress=False,
    )
    results["budget"] = [budget.step, budget.elapsed_s]
    return full


def _predict_parts(ctx, root: Path, vol: np.ndarray, full, results: dict) -> None:
    """(d), (e): prediction shared over the ranks."""
    from cryogen.predict import load_model, predict_volume

    out = root / "out"
    # (d) tiles of one volume shared over the ranks, then summed
    net = full.generator.eval()
    f = nonlinear_predictor(net)
    part = sliding_window_inference(
        torch.from_numpy(vol), distributed.shard_predictor(f), roi_size=16, overlap=4
    )
    total = distributed.all_reduce_sum(part)
    if ctx.is_main:
        torch.save(total, out / "tiles.pt")

    # (e) whole tomograms shared over the ranks, each output written by one rank
    model = load_model(root / "runs" / "full", "cpu")
    mine = distributed.shard([0, 1, 2])
    for i in mine:
        pred = predict_volume(model, phantom(24 if i != 1 else 20, seed=10 + i), TILES)
        write_volume(out / f"pred_{i}.mrc", pred, voxel_size=1.0)
    results["predicted"] = mine
    distributed.barrier(ctx, "the end of prediction")


def _worker_main(mode: str, root: Path) -> None:
    """What each rank runs under ``torchrun`` (``python test_ddp.py MODE DIR``)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    root = Path(root)
    if mode == "hang":
        _hang_worker(root)
    rank = int(os.environ["RANK"])
    events = _record_writes(root / "runs") if rank > 0 else []
    out = root / "out"
    out.mkdir(exist_ok=True)
    vol = read_volume(root / "vol.mrc").load()
    results: dict[str, object] = {"rank": rank}
    with distributed.session("cpu") as ctx:
        assert ctx.world_size == 2 and ctx.backend == "gloo"
        full = _train_parts(ctx, root, vol, results)
        _predict_parts(ctx, root, vol, full, results)
    if rank > 0:
        results["events"] = events
    (out / f"rank{rank}.json").write_text(json.dumps(results))


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One ``torchrun`` launch of the worker (every training and prediction part)."""
    root = tmp_path_factory.mktemp("ddp")
    write_volume(root / "vol.mrc", phantom(), voxel_size=1.0)
    (root / "cfg.json").write_text(json.dumps({**BASE, "steps": 4, "dropout": 0.1}))
    proc, wall = launch([str(HERE), "main", str(root)], root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return root


def loss_rows(run_dir: Path) -> list[dict]:
    """losses.csv without the wall-clock column."""
    with (run_dir / "losses.csv").open(newline="") as fh:
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in csv.DictReader(fh)]


def rank_json(root: Path, r: int) -> dict:
    return json.loads((root / "out" / f"rank{r}.json").read_text())


# ------------------------------------------------------------------------------ tests
def test_ddp_matches_single_process(job, tmp_path):
    """2 ranks x batch 1 == 1 process x batch 2 with the same crops (scripted schedule):
    generator and energy model, with the adversarial term, E's updates and its R1 penalty
    (a double backward through DDP) on at every step."""
    ranks = [torch.load(job / "out" / f"eq_rank{r}.pt") for r in range(2)]
    assert max_diff(ranks[0], ranks[1]) == 0.0  # replicas stay bit-identical
    vol = read_volume(job / "vol.mrc").load()
    cfg = TrainConfig.from_sources("cpu", overrides={**BASE, **QUIET, "steps": STEPS_EQ})
    ref = make_trainer(cfg.model_copy(update={"batch_size": 2}), vol, tmp_path / "single")
    init = both_of(ref)
    script(ref, schedule(STEPS_EQ, 2))
    ref.run(progress=False, callback=None)
    single = both_of(ref)
    # negative control: one process, batch 1, rank 0's crops only
    ctl = make_trainer(cfg.model_copy(update={"batch_size": 1}), vol, tmp_path / "control")
    script(ctl, schedule(STEPS_EQ, 2)[:, :1])
    ctl.run(progress=False, callback=None)
    moved, control = max_diff(single, init), max_diff(single, both_of(ctl))
    diff = max_diff(ranks[0], single)
    assert moved > 1e-4 and control > 100 * TOL, (moved, control)
    assert diff <= TOL, f"DDP vs single process: {diff:.3g} (control {control:.3g})"


def test_ddp_resume_and_replicas(job):
    out = job / "out"
    full = [torch.load(out / f"full_rank{r}.pt") for r in range(2)]
    res = [torch.load(out / f"res_rank{r}.pt") for r in range(2)]
    assert max_diff(full[0], full[1]) == 0.0  # random crops per rank, weights identical
    assert max_diff(res[0], res[1]) == 0.0
    # Ctrl-C on rank 1 during step 2: both ranks stop after step 3 (the next agreement)
    assert rank_json(job, 0)["interrupted"] == rank_json(job, 1)["interrupted"] == [True, 3]
    # ... and --resume continues every rank's own random streams: equal to uninterrupted
    assert max_diff(res[0], full[0]) == 0.0
    ck = load_checkpoint(job / "runs" / "res" / "last.pt")
    assert ck["step"] == 4 and ck["world_size"] == 2 and len(ck["rank_rng"]) == 2
    assert loss_rows(job / "runs" / "res") == loss_rows(job / "runs" / "full")
    assert [int(r["step"]) for r in loss_rows(job / "runs" / "res")] == [1, 2, 3, 4]


def test_ddp_wall_clock_budget_ends_on_the_same_step(job):
    b0, b1 = rank_json(job, 0)["budget"], rank_json(job, 1)["budget"]
    assert b0 == b1  # same step count and the same (rank 0's) elapsed time
    ck = load_checkpoint(job / "runs" / "budget" / "last.pt")
    assert ck["step"] == b0[0] >= 1
    rows = list(csv.DictReader((job / "runs" / "budget" / "losses.csv").open()))
    assert int(rows[-1]["step"]) == b0[0] and len(rows) == b0[0]


def test_only_rank0_writes(job):
    events = rank_json(job, 1)["events"]
    assert events == [], events[:5]  # rank 1 opened nothing under runs/ for writing
    for name in ("eq", "full", "res", "budget"):
        rd = job / "runs" / name
        files = sorted(p.relative_to(rd).as_posix() for p in rd.rglob("*") if p.is_file())
        step = load_checkpoint(rd / "last.pt")["step"]
        snaps = [3, 4] if name == "res" else [step]  # res: stopped at 3, resumed to 4
        assert files == [f"checkpoints/step_{s:06d}.pt" for s in snaps] + [
            "config.json",
            "last.pt",
            "losses.csv",
            "losses.png",
            "run.log",
        ], files


def test_distributed_prediction_matches_single_process(job):
    from cryogen.predict import load_model, predict_volume

    model = load_model(job / "runs" / "full", "cpu")
    done = rank_json(job, 0)["predicted"] + rank_json(job, 1)["predicted"]
    assert sorted(done) == [0, 1, 2]  # every tomogram once
    for i in range(3):
        ref = predict_volume(model, phantom(24 if i != 1 else 20, seed=10 + i), TILES)
        got = read_volume(job / "out" / f"pred_{i}.mrc").load()
        np.testing.assert_array_equal(got, ref)
    # tiles of one volume over two ranks == one process
    vol = torch.from_numpy(read_volume(job / "vol.mrc").load())
    f = nonlinear_predictor(model.generator)
    ref = sliding_window_inference(vol, f, roi_size=16, overlap=4)
    torch.testing.assert_close(torch.load(job / "out" / "tiles.pt"), ref, rtol=1e-6, atol=1e-6)


def test_torchrun_cli_train(job, tmp_path):
    """``torchrun -m cryogen train`` equals the library run of the same config."""
    (tmp_path / "vol.mrc").symlink_to(job / "vol.mrc")
    (tmp_path / "cfg.json").write_text((job / "cfg.json").read_text())
    args = ["-m", "cryogen", "train", "vol.mrc", "-o", "run", "--config", "cfg.json", "--quiet"]
    proc, _ = launch(args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rd = tmp_path / "run"
    got = load_checkpoint(rd / "last.pt")["generator"]
    assert max_diff(got, torch.load(job / "out" / "full_rank0.pt")) == 0.0
    rows = list(csv.DictReader((rd / "losses.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # one writer, one row per step
    assert not [p for p in rd.rglob(".*")]  # no temporary files left


def test_torchrun_cli_predict(job, tmp_path):
    """``torchrun -m cryogen predict`` shares the tomograms and writes each output once,
    equal to a single-process prediction."""
    from cryogen.predict import load_model, predict_file

    names = []
    for i, n in enumerate((24, 20, 22)):
        write_volume(tmp_path / f"t{i}.mrc", phantom(n, seed=20 + i), voxel_size=1.0)
        names.append(f"t{i}.mrc")
    run = str(job / "runs" / "full")
    args = ["-m", "cryogen", "predict", run, *names, "-o", "out", "--tile", "16"]
    proc, _ = launch([*args, "--overlap", "4", "--quiet", "--device", "cpu"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    model = load_model(job / "runs" / "full", "cpu")
    for i, name in enumerate(names):
        ref = tmp_path / f"ref{i}.mrc"
        predict_file(model, tmp_path / name, ref, TILES)
        got = read_volume(tmp_path / "out" / f"t{i}_corrected.mrc").load()
        np.testing.assert_array_equal(got, read_volume(ref).load())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"t{i}_corrected.mrc" for i in range(3)
    ]


def test_hanging_rank_times_out(tmp_path):
    """A rank that stops answering makes the others fail after the timeout, not hang."""
    proc, wall = launch(
        [str(HERE), "hang", str(tmp_path)],
        tmp_path,
        timeout=100,
        env={distributed.TIMEOUT_ENV: "3"},
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "DistributedError: rank 0/2" in text and "within 3 s" in text, text[-3000:]
    stuck = float((tmp_path / "out" / "stuck.txt").read_text())
    failed = float((tmp_path / "out" / "failed.txt").read_text())
    assert 2.5 < failed - stuck < 30  # the 3 s timeout, not the 120 s of the stuck rank
    assert wall < 90


if __name__ == "__main__":
    _worker_main(sys.argv[1], Path(sys.argv[2]))
