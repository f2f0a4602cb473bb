"""Collective operations with the rules of :mod:`cryogen.distributed`: each is a no-op
(or the identity) in a single process, and fails with :class:`DistributedError` after the
timeout when a rank does not join."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from cryogen.distributed.context import DistContext, current, translate_errors

__all__ = [
    "all_reduce_sum",
    "any_flag",
    "barrier",
    "broadcast_flag",
    "gather_objects",
    "step_sync",
]


def barrier(ctx: DistContext | None = None, what: str = "barrier") -> None:
    """Wait for every rank (no-op in a single process); fails after the timeout."""
    ctx = ctx or current()
    if not ctx.distributed:
        return
    with translate_errors(ctx, f"waiting for the other ranks at {what}"):
        if ctx.backend == "nccl":
            dist.barrier(device_ids=[ctx.device.index or 0])
        else:
            dist.barrier()


def broadcast_flag(flag: bool, ctx: DistContext | None = None, *, src: int = 0) -> bool:
    """``src``'s ``flag`` on every rank."""
    ctx = ctx or current()
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.comm_device)
    with translate_errors(ctx, "broadcasting a decision"):
        dist.broadcast(t, src=src)
    return bool(t.item() > 0.5)


def any_flag(flag: bool, ctx: DistContext | None = None) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    ctx = ctx or current()
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.comm_device)
    with translate_errors(ctx, "agreeing on a decision"):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0.5)


def step_sync(
    elapsed: float,
    stop: bool,
    values: Mapping[str, float] | None = None,
    ctx: DistContext | None = None,
) -> tuple[float, bool, dict[str, float]]:
    """Agree on the end of a training step with one all-reduce.

    Parameters
    ----------
    elapsed
        This rank's training time so far, seconds.
    stop
        This rank wants to stop (Ctrl-C, a callback).
    values
        Numbers to average over the ranks (e.g. the step's losses).  Every rank must pass
        the same keys; NaN stays NaN.

    Returns
    -------
    elapsed : float
        Rank 0's value, so that a wall-clock budget ends on the same step everywhere and
        schedules (learning rate, lambda) that follow the progress agree.
    stop : bool
        True when any rank asked to stop.
    values : dict
        The means over the ranks.
    """
    ctx = ctx or current()
    vals = dict(values or {})
    if not ctx.distributed:
        return float(elapsed), bool(stop), {k: float(v) for k, v in vals.items()}
    keys = sorted(vals)
    head = [float(elapsed) if ctx.is_main else 0.0, 1.0 if stop else 0.0]
    t = torch.tensor(
        head + [float(vals[k]) for k in keys], dtype=torch.float64, device=ctx.comm_device
    )
    with translate_errors(ctx, "synchronising the training step"):
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    out = t.cpu().tolist()
    means = {k: v / ctx.world_size for k, v in zip(keys, out[2:], strict=True)}
    return out[0], out[1] > 0.5, means


def gather_objects(obj: Any, ctx: DistContext | None = None) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) as a list on rank 0, ``None`` on the others."""
    ctx = ctx or current()
    if not ctx.distributed:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    with translate_errors(ctx, "gathering state for a checkpoint"):
        dist.gather_object(obj, out, dst=0)
    return out


def all_reduce_sum(
    x: torch.Tensor, ctx: DistContext | None = None, *, chunk_bytes: int = 256 * 2**20
) -> torch.Tensor:
    """Sum ``x`` over the ranks, in place, and return it.

    Tensors on another device than the backend's (a CPU tensor under NCCL) travel in slabs
    of at most ``chunk_bytes`` along their first axis, so that a tomogram-sized buffer does
    not need a second copy in GPU memory.
    """
    ctx = ctx or current()
    if not ctx.distributed:
        return x
    dev = ctx.comm_device
    with translate_errors(ctx, "summing the partial predictions"):
        if x.device == dev and x.is_contiguous():
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
            return x
        flat = x if x.ndim > 0 else x.reshape(1)
        per = max(1, flat[0].numel() * flat.element_size()) if flat.ndim > 0 else 1
        step = max(1, chunk_bytes // per)
        for i in range(0, flat.shape[0], step):
            part = flat[i : i + step].to(dev).contiguous()
            dist.all_reduce(part, op=dist.ReduceOp.SUM)
            flat[i : i + step].copy_(part)
    return x
