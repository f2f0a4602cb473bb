"""Per-rank random streams and the sharing of work between ranks (whole tomograms, a
range, the tiles of one tomogram)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from cryogen.distributed.context import current, rank

__all__ = [
    "rank_seed",
    "rank_seed_sequence",
    "shard",
    "shard_predictor",
    "shard_range",
    "silence_other_ranks",
]

T = TypeVar("T")

# spawn-key prefix of the per-rank seed streams (distinct from SeedSequence(seed).spawn(n))
_RANK_KEY = 0x5EED


def rank_seed_sequence(seed: int, rank: int, step: int = 0) -> np.random.SeedSequence:
    """Root of rank ``rank``'s random streams.

    Rank 0 at step 0 gets ``SeedSequence(seed)``, the single-process root, so that rank 0
    of a distributed run draws what a single process would; other ranks (or a fresh stream
    started at ``step``, for a rank that a resumed checkpoint does not know) get
    independent streams keyed by ``(rank, step)``.
    """
    if rank < 0 or step < 0:
        raise ValueError(f"rank and step must be >= 0, got {rank}, {step}")
    if rank == 0 and step == 0:
        return np.random.SeedSequence(seed)
    return np.random.SeedSequence(seed, spawn_key=(_RANK_KEY, int(rank), int(step)))


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A 63-bit integer seed for rank ``rank`` (``seed`` itself for rank 0 at step 0)."""
    if rank == 0 and step == 0:
        return int(seed)
    words = rank_seed_sequence(seed, rank, step).generate_state(2, np.uint32)
    return int(words.view(np.uint64)[0]) & (2**63 - 1)


# ---------------------------------------------------------------------------- sharing work
def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: ``items[rank::world]`` (round robin).

    Every item goes to exactly one rank; with more ranks than items some ranks get none.
    Sorting ``items`` by size (largest first) before sharing balances the load.
    """
    r = current().rank if rank is None else int(rank)
    w = current().world_size if world is None else int(world)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world, got rank {r}, world {w}")
    return list(items[r::w])


def shard_range(n: int, rank: int | None = None, world: int | None = None) -> range:
    """This rank's contiguous block of ``range(n)`` (sizes differ by at most one)."""
    r = current().rank if rank is None else int(rank)
    w = current().world_size if world is None else int(world)
    if w < 1 or not 0 <= r < w or n < 0:
        raise ValueError(f"need n >= 0 and 0 <= rank < world, got n {n}, rank {r}, world {w}")
    q, m = divmod(n, w)
    start = r * q + min(r, m)
    return range(start, start + q + (1 if r < m else 0))


def shard_predictor(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    rank: int | None = None,
    world: int | None = None,
    *,
    out_channels: int | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a tile predictor so that this rank computes only its share of the tile batches.

    Call ``k`` (0, 1, 2, ...) is computed on rank ``k % world``; the other ranks return
    zeros of shape ``(n, out_channels, r, r, r)`` for tiles ``(n, C, r, r, r)``
    (``out_channels`` defaults to ``C``).  Because blending is linear
    (``out = sum_i w_i p_i / sum_i w_i``), the outputs of
    ``sliding_window_inference(volume, shard_predictor(f), ...)`` on all ranks add up to
    ``sliding_window_inference(volume, f, ...)``: follow it with :func:`all_reduce_sum`,
    and only then apply anything non-linear (un-normalising, keeping the measured data).

    Every rank must call ``sliding_window_inference`` with the same volume shape and tile
    settings, so that call ``k`` means the same tiles everywhere.
    """
    r = current().rank if rank is None else int(rank)
    w = current().world_size if world is None else int(world)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world, got rank {r}, world {w}")
    calls = [0]

    def sharded(tiles: torch.Tensor) -> torch.Tensor:
        k = calls[0]
        calls[0] += 1
        if k % w == r:
            return predictor(tiles)
        c = tiles.shape[1] if out_channels is None else int(out_channels)
        return torch.zeros(
            (tiles.shape[0], c, *tiles.shape[-3:]),
            dtype=tiles.dtype if tiles.is_floating_point() else torch.float32,
            device=tiles.device,
        )

    return sharded


def silence_other_ranks(level: int = logging.ERROR, name: str = "cryogen") -> None:
    """Raise the ``cryogen`` logger's level on ranks other than 0 (one copy of each message).

    Meant for the command line's entry point; the library never calls it.
    """
    if rank() != 0:
        logging.getLogger(name).setLevel(level)
