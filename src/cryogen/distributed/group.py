"""Joining and leaving the ``torchrun`` job: :func:`setup`, :func:`teardown` and the
context manager :func:`session` that the library's entry points run in."""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from cryogen.device import pick_device
from cryogen.distributed.collectives import barrier
from cryogen.distributed.context import (
    DistContext,
    DistributedError,
    activated,
    env_int,
    first_line,
    launched_by_torchrun,
    timeout_from_env,
    translate_errors,
)
from cryogen.errors import InputError

__all__ = ["session", "setup", "teardown"]

logger = logging.getLogger(__name__)


def _local_device(device: torch.device, local_rank: int, world: int) -> torch.device:
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if device.index is None:
            if local_rank >= n:
                raise InputError(
                    f"LOCAL_RANK {local_rank} but this node has {n} CUDA device(s): start at "
                    f"most {n} processes per node (torchrun --nproc_per_node={n})"
                )
            device = torch.device("cuda", local_rank)
        elif world > 1:
            logger.warning(
                "device %s was named explicitly: every rank on this node uses it; give "
                "device 'cuda' to put rank k on cuda:k",
                device,
            )
        torch.cuda.set_device(device)
        return device
    if device.type == "mps":
        raise InputError(
            "distributed training does not run on Apple MPS; use device 'cpu' or one process"
        )
    return device


def setup(device: str | torch.device = "auto", *, timeout_s: float | None = None) -> DistContext:
    """Join the ``torchrun`` job this process belongs to, if any.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see :func:`cryogen.device.pick_device`) or a
        device; under ``torchrun`` a CUDA device without index becomes ``cuda:LOCAL_RANK``.
    timeout_s
        Process-group timeout (default: ``CRYOGEN_DIST_TIMEOUT`` or 600 s): the longest any
        rank waits for the others in one collective before failing.

    Returns
    -------
    DistContext
        ``world_size == 1`` (and no process group) outside ``torchrun`` or with one process.

    Raises
    ------
    InputError
        Bad environment (``LOCAL_RANK`` beyond the GPUs, MPS, bad timeout).
    DistributedError
        The rendezvous with the other ranks failed.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    timeout = float(timeout_s) if timeout_s is not None else timeout_from_env()
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        local = env_int("LOCAL_RANK", 0)
        return DistContext(
            rank=dist.get_rank(),
            world_size=world,
            local_rank=local,
            device=_local_device(dev, local, world) if world > 1 else dev,
            backend=str(dist.get_backend()),
            timeout_s=timeout,
            owns_group=False,
        )
    world = env_int("WORLD_SIZE", 1) if launched_by_torchrun() else 1
    if world <= 1:
        return DistContext(device=dev, timeout_s=timeout)
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed support")
    rk, local = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    dev = _local_device(dev, local, world)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"timeout": datetime.timedelta(seconds=timeout)}
    if backend == "nccl":
        kwargs["device_id"] = dev
    try:
        dist.init_process_group(backend=backend, **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {rk}/{world}: could not join the torchrun job ({backend}): {first_line(exc)}"
        ) from None
    ctx = DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local,
        device=dev,
        backend=backend,
        timeout_s=timeout,
        owns_group=True,
    )
    logger.info("rank %d/%d on %s (%s)", ctx.rank, ctx.world_size, dev, backend)
    return ctx


def teardown(ctx: DistContext, *, ok: bool = True) -> None:
    """Leave the job :func:`setup` joined (no-op for a group :func:`setup` did not create).

    ``ok``: a final barrier, so that no rank returns before rank 0 has written its files,
    then ``destroy_process_group``.  After a failure (``ok=False``): no barrier, and the
    group is aborted, which stops its pending work (a timed-out collective would otherwise
    make the process abort at exit, while the failed step's DDP wrappers still hold it).
    """
    if not ctx.owns_group or not dist.is_initialized():
        return
    if ok:
        try:
            barrier(ctx, "the end of the run")
        finally:
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        return
    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    with contextlib.suppress(Exception):
        if abort is not None:
            abort()
        else:  # pragma: no cover - older torch
            dist.destroy_process_group()


@contextlib.contextmanager
def session(
    device: str | torch.device = "auto", *, timeout_s: float | None = None
) -> Iterator[DistContext]:
    """Context manager: :func:`setup`, run the body, :func:`teardown`.

    Errors of the communication backend raised inside the body (a peer that died, a
    timeout) come out as :class:`DistributedError` with the rank and the timeout in the
    message; :func:`current` returns this context inside the body.
    """
    ctx = setup(device, timeout_s=timeout_s)
    ok = False
    try:
        with activated(ctx), translate_errors(ctx, "a collective operation"):
            yield ctx
        ok = True
    finally:
        teardown(ctx, ok=ok)
