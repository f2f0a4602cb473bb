"""Networks under data parallelism: wrapping in DDP, unwrapping, and checking that the
replicas on all ranks are equal."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cryogen.distributed.context import DistContext, current, translate_errors

__all__ = ["replicas_equal", "unwrap", "wrap_ddp"]


def wrap_ddp(
    module: nn.Module, ctx: DistContext | None = None, *, find_unused_parameters: bool = False
) -> nn.Module | None:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`, or ``None`` in a
    single process.

    Construction broadcasts rank 0's parameters and buffers, so every replica starts equal.
    Keep calling the plain ``module`` for forward passes without gradient (they need no
    synchronisation) and for the parameters' updates, ``state_dict`` and checkpoints; use
    the wrapper for forward passes whose parameter gradients a backward pass will need.
    """
    ctx = ctx or current()
    if not ctx.distributed:
        return None
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # channels-last 3D weights with one input channel have two equivalent stride layouts;
    # DDP's reducer warns about the difference, which costs nothing
    warnings.filterwarnings(
        "ignore", message="Grad strides do not match bucket view strides", category=UserWarning
    )
    with translate_errors(ctx, "wrapping a network for data parallelism"):
        return DistributedDataParallel(
            module,
            device_ids=ids,
            output_device=ids[0] if ids else None,
            find_unused_parameters=find_unused_parameters,
        )


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` (or ``module`` itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def replicas_equal(module: nn.Module, ctx: DistContext | None = None) -> bool:
    """True when every rank holds bit-identical parameters (a cheap digest per rank)."""
    ctx = ctx or current()
    if not ctx.distributed:
        return True
    import hashlib

    h = hashlib.sha256()
    for name, p in unwrap(module).named_parameters():
        h.update(name.encode())
        t = p.detach().cpu().clone(memory_format=torch.contiguous_format).reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes())
    digests: list[Any] = [None] * ctx.world_size
    with translate_errors(ctx, "comparing the replicas"):
        dist.all_gather_object(digests, h.hexdigest())
    return len(set(digests)) == 1
