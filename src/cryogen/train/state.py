"""The state of a training run: its random streams and its checkpoint payload.

Random streams
--------------
A run seeds the global RNGs (model initialisation, dropout) and then draws from named,
independent streams: the crops (the dataset's generator), the step's rotations and
``u``s (``step``), the consistency noise (``noise``), and the energy model's and data
term's draws and noise (``e_step``, ``e_noise``).  Because E has streams of its own, the
crops, rotations and consistency noise of a CryoGEN run are those of an IsoNet-style run
with the same seed: with E and the data term off the two train the same weights.

Under ``torchrun`` rank 0 keeps the single-process streams; rank ``r > 0`` gets its own
crops, rotations and noise (:func:`cryogen.distributed.rank_seed_sequence`) and the same
subtomograms.

Checkpoints
-----------
``last.pt`` holds everything a resumed run needs to continue as if never stopped (the
networks, optimisers, loss scalers, random states, the sampler and the refilled targets);
snapshots hold the generator only.  Random states are stored in plain Python types and
tensors, which ``torch.load(weights_only=True)`` reads back.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cryogen import distributed
from cryogen.errors import InputError
from cryogen.model import LAST
from cryogen.rotations import WEDGE_ROTATIONS

if TYPE_CHECKING:
    from cryogen.train.trainer import Trainer

__all__ = [
    "RandomStreams",
    "RunSeeds",
    "capture_rng_state",
    "checkpoint_meta",
    "full_checkpoint",
    "rank_random_state",
    "restore_checkpoint",
    "restore_rng_state",
    "run_seeds",
    "seed_globals",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- streams
@dataclass
class RandomStreams:
    """The named random streams of the training steps.

    Attributes
    ----------
    step
        The step's rotations and noise factors ``u``.
    noise
        The consistency input's noise.
    e_step
        The energy model's and the data term's rotations and ``u``s.
    e_noise
        Their noise.
    """

    step: np.random.Generator
    noise: torch.Generator
    e_step: np.random.Generator
    e_noise: torch.Generator

    @classmethod
    def from_seeds(cls, *seqs: np.random.SeedSequence) -> RandomStreams:
        """The four streams from four seed sequences (``step, noise, e_step, e_noise``)."""
        ss_step, ss_noise, ss_estep, ss_enoise = seqs
        return cls(
            step=np.random.default_rng(ss_step),
            noise=torch.Generator().manual_seed(int(ss_noise.generate_state(1)[0])),
            e_step=np.random.default_rng(ss_estep),
            e_noise=torch.Generator().manual_seed(int(ss_enoise.generate_state(1)[0])),
        )

    def follow(self, other: RandomStreams) -> None:
        """Draw from ``other``'s generators from now on (in place: users keep this object)."""
        self.step, self.noise = other.step, other.noise
        self.e_step, self.e_noise = other.e_step, other.e_noise

    def u(self, *, e: bool = False) -> float:
        """``u ~ U(0, 1]`` from the step's stream, or with ``e`` from E's."""
        return 1.0 - float((self.e_step if e else self.step).random())

    def rotations(self, n: int, *, e: bool = False) -> list[int]:
        """``n`` of the 20 wedge-changing rotations (the step's stream, or with ``e`` E's)."""
        return [self.pick(WEDGE_ROTATIONS, e=e) for _ in range(n)]

    def pick(self, options: Sequence[int], *, e: bool = False) -> int:
        """One of ``options``, uniformly (the step's stream, or with ``e`` E's)."""
        rng = self.e_step if e else self.step
        return options[int(rng.integers(len(options)))]

    def randn(self, shape: Any, device: torch.device, *, e: bool = False) -> torch.Tensor:
        """Standard normal noise (drawn on the CPU, then moved to ``device``)."""
        gen = self.e_noise if e else self.noise
        return torch.randn(shape, generator=gen).to(device)

    def named(
        self, saved: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.random.Generator], dict[str, torch.Generator]]:
        """The streams by name, for :func:`capture_rng_state`; with ``saved`` (a captured
        state) only those it holds: a checkpoint written before E had its own streams
        leaves them as the seed made them."""
        nps = {"step": self.step, "e_step": self.e_step}
        ts = {"noise": self.noise, "e_noise": self.e_noise}
        if saved is not None:
            nps = {k: g for k, g in nps.items() if k in saved["named_numpy"]}
            ts = {k: g for k, g in ts.items() if k in saved["named_torch"]}
        return nps, ts


@dataclass
class RunSeeds:
    """Where a rank's randomness starts.

    Attributes
    ----------
    data
        Seed of the dataset (subtomogram origins; the crops too on rank 0).
    crops
        Rank ``r > 0``: the seed of its own crops; ``None`` on rank 0.
    streams
        The step's streams.
    """

    data: int
    crops: np.random.SeedSequence | None
    streams: RandomStreams


def seed_globals(seed: int) -> None:
    """Seed the global torch, numpy (legacy) and python RNGs."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy global RNG, if anyone uses it)
    random.seed(seed)


def run_seeds(seed: int, rank: int = 0, step: int = 0) -> RunSeeds:
    """The seeds of rank ``rank``; a fresh start at ``step`` for a rank that a resumed
    checkpoint does not know (then ``data`` is unused)."""
    ss_data, ss_step, ss_noise, ss_estep, ss_enoise = np.random.SeedSequence(seed).spawn(5)
    crops = None
    if rank > 0:  # own crops, rotations and noise; same subtomograms (ss_data)
        crops, ss_step, ss_noise, ss_estep, ss_enoise = distributed.rank_seed_sequence(
            seed, rank, step
        ).spawn(5)
    streams = RandomStreams.from_seeds(ss_step, ss_noise, ss_estep, ss_enoise)
    return RunSeeds(int(ss_data.generate_state(1)[0]), crops, streams)


def capture_rng_state(
    extra_numpy: dict[str, np.random.Generator] | None = None,
    extra_torch: dict[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Global torch (CPU and CUDA), numpy and python RNG states, plus named generators."""
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _np_state_to_plain(_legacy_numpy_state()),
        "python": [py[0], list(py[1]), py[2]],
        "named_numpy": {
            k: _np_state_to_plain(dict(g.bit_generator.state))
            for k, g in (extra_numpy or {}).items()
        },
        "named_torch": {k: g.get_state() for k, g in (extra_torch or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(
    state: dict[str, Any],
    extra_numpy: dict[str, np.random.Generator] | None = None,
    extra_torch: dict[str, torch.Generator] | None = None,
) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    legacy = _np_state_from_plain(state["numpy"])
    legacy_tuple = (
        legacy["name"],
        legacy["keys"],
        legacy["pos"],
        legacy["has_gauss"],
        legacy["cached"],
    )
    np.random.set_state(legacy_tuple)  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    for k, g in (extra_numpy or {}).items():
        g.bit_generator.state = _np_state_from_plain(state["named_numpy"][k])
    for k, gen in (extra_torch or {}).items():
        gen.set_state(state["named_torch"][k].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _legacy_numpy_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    return {
        "name": name,
        "keys": keys,
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _np_state_to_plain(state: dict) -> dict:
    """numpy bit-generator state with only plain Python types (weights_only loadable)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return {"__ndarray__": v.tolist(), "dtype": str(v.dtype)}
        if isinstance(v, np.integer):
            return int(v)
        return v

    return clean(state)


def _np_state_from_plain(state: dict) -> dict:
    def restore(v: Any) -> Any:
        if isinstance(v, dict):
            if "__ndarray__" in v:
                return np.array(v["__ndarray__"], dtype=v["dtype"])
            return {k: restore(x) for k, x in v.items()}
        return v

    return restore(state)


# ---------------------------------------------------------------------------- checkpoints
def checkpoint_meta(t: Trainer) -> dict[str, Any]:
    """What every checkpoint of the run records besides weights."""
    cfg = t.cfg
    return {
        "config": cfg.model_dump(mode="json"),
        "method": cfg.method,
        "tilt_min": float(cfg.tilt_min),
        "tilt_max": float(cfg.tilt_max),
        "voxel_size": t.voxel_size,
        "normalisation": t.data.normalisation.to_dict(),
        "crop_size": int(t.data.crop_size),
        "step": int(t.step),
        "elapsed_s": float(t.elapsed),
        "world_size": int(t.dist.world_size),
        "half_sets": t.data.halves is not None,
        "tilt_ranges": [list(r) for r in t.wedges.ranges],
    }


def full_checkpoint(t: Trainer) -> dict[str, Any]:
    """The payload of ``last.pt``: everything a resumed run continues from."""
    nets = t.networks
    return {
        "kind": "full",
        **checkpoint_meta(t),
        "generator": nets.g.state_dict(),
        "energy": nets.e.state_dict() if nets.e is not None else None,
        **t.optimisers.state_dict(),
        "rng": capture_rng_state(*t.streams.named()),
        "data": t.data.state_dict(),
        "isonet": t.refill.state_dict(),
    }


def rank_random_state(t: Trainer) -> dict[str, Any]:
    """This rank's random streams and crop sampler (``rank_rng[r]`` of a DDP checkpoint)."""
    return {"rng": capture_rng_state(*t.streams.named()), **t.data.sampler_state()}


def restore_checkpoint(t: Trainer, ckpt: dict[str, Any]) -> None:
    """Bring a freshly built trainer to the state of ``ckpt`` (a full checkpoint)."""
    nets = t.networks
    nets.g.load_state_dict(ckpt["generator"])
    if nets.e is not None:
        if ckpt.get("energy") is None:
            raise InputError(f"{t.run_dir / LAST}: the checkpoint has no energy model")
        nets.e.load_state_dict(ckpt["energy"])
    t.optimisers.load_state_dict(ckpt)
    t.data.load_state_dict(ckpt["data"])
    restore_rng_state(ckpt["rng"], *t.streams.named(ckpt["rng"]))
    t.step = int(ckpt["step"])
    _restore_rank_streams(t, ckpt)
    t.elapsed = float(ckpt["elapsed_s"])
    t.last_save = t.elapsed
    t.refill.load_state_dict(ckpt.get("isonet") or {})
    logger.info("resumed %s at step %d (%.1f s)", t.run_dir, t.step, t.elapsed)


def _restore_rank_streams(t: Trainer, ckpt: dict[str, Any]) -> None:
    """Under DDP, rank r continues its own streams (``rank_rng[r]``); a rank the checkpoint
    does not know (more ranks than the run had) starts fresh streams keyed by the step."""
    rank, states = t.dist.rank, ckpt.get("rank_rng") or []
    if rank < len(states):
        if rank > 0:
            st = states[rank]
            restore_rng_state(st["rng"], *t.streams.named(st["rng"]))
            t.data.load_sampler_state(st)
    elif rank > 0:
        fresh = run_seeds(t.cfg.seed, rank, t.step)
        assert fresh.crops is not None  # a rank > 0 has crops of its own
        t.data.reseed(fresh.crops)
        t.streams.follow(fresh.streams)
        torch.manual_seed(distributed.rank_seed(t.cfg.seed + 2, rank, t.step))
    old = int(ckpt.get("world_size", 1))
    if old != t.dist.world_size and t.dist.is_main:
        logger.warning(
            "resuming a run of %d rank(s) with %d: the global batch changes and the "
            "continuation differs from an uninterrupted run",
            old,
            t.dist.world_size,
        )
