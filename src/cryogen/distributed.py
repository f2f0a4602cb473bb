"""Data-parallel training and prediction with ``torch.distributed`` (launched by ``torchrun``).

One process per device ("rank"); ``torchrun`` starts them and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``::

    torchrun --standalone --nproc_per_node=4 -m cryogen train tomo.mrc -o run/

:func:`session` joins the job (NCCL on CUDA, gloo on the CPU, the device picked by
``LOCAL_RANK``) and leaves it at the end; outside ``torchrun`` it is a no-op and every helper
here behaves as in a single process (rank 0 of 1), so the library needs no second code path.

Rules the training engine follows (and any other user of this module should):

* every rank runs the same steps: a decision that could differ between ranks (a wall-clock
  budget, Ctrl-C, a callback asking to stop) is agreed on with :func:`step_sync` or
  :func:`any_flag` before it changes the control flow;
* only the main rank (:func:`is_main`) writes files; the others skip;
* a collective that another rank never joins fails after the process-group timeout
  (``CRYOGEN_DIST_TIMEOUT`` seconds, default 600) with a :class:`DistributedError` that says
  so, instead of waiting forever (gloo raises it; NCCL's watchdog aborts the process with
  its own message after the same timeout).  ``torchrun`` itself stops the remaining ranks as
  soon as one rank exits with an error.

``torchrun`` forwards Ctrl-C (SIGINT) to every rank, and SIGTERM (Slurm's time limit with
``--signal=TERM@120``, ``scancel``) likewise; the training engine treats both as "checkpoint
after this step", agreed on by all ranks, and ``torchrun`` waits 30 s before killing.

Prediction shares work in two ways: whole tomograms (:func:`shard`, each output written by
the rank that computed it) or the tiles of one tomogram (:func:`shard_predictor` in
``sliding_window_inference``, then :func:`all_reduce_sum` of the blended partial outputs:
blending is linear, so the sum over ranks is the single-process result).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cryogen.device import pick_device
from cryogen.errors import CryogenError, InputError

__all__ = [
    "DistContext",
    "DistributedError",
    "TIMEOUT_ENV",
    "DEFAULT_TIMEOUT_S",
    "launched_by_torchrun",
    "timeout_from_env",
    "setup",
    "teardown",
    "session",
    "current",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "broadcast_flag",
    "any_flag",
    "step_sync",
    "gather_objects",
    "wrap_ddp",
    "unwrap",
    "replicas_equal",
    "rank_seed_sequence",
    "rank_seed",
    "shard",
    "shard_range",
    "shard_predictor",
    "all_reduce_sum",
    "silence_other_ranks",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_ENV = "CRYOGEN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
# spawn-key prefix of the per-rank seed streams (distinct from SeedSequence(seed).spawn(n))
_RANK_KEY = 0x5EED


class DistributedError(CryogenError):
    """A rank could not reach the others (one failed, hangs, or the job is misconfigured)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a ``torchrun`` job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of ranks, rank on this node (``0, 1, 0`` outside ``torchrun``).
    device : torch.device
        This rank's compute device (``cuda:LOCAL_RANK`` on GPUs).
    backend : str or None
        ``"nccl"`` or ``"gloo"``; ``None`` in a single process.
    timeout_s : float
        Process-group timeout, seconds.
    owns_group : bool
        True when :func:`setup` created the process group (and :func:`teardown` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes files."""
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Device of the tensors the backend exchanges (CUDA for NCCL, else the CPU)."""
        return self.device if self.backend == "nccl" else torch.device("cpu")


# ---------------------------------------------------------------------------- environment
def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment variable {name}={raw!r} is not an integer") from None


def launched_by_torchrun() -> bool:
    """True when ``RANK`` and ``WORLD_SIZE`` are set (``torchrun``, ``srun`` wrappers, ...)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout_from_env() -> float:
    """``CRYOGEN_DIST_TIMEOUT`` (seconds, > 0) or :data:`DEFAULT_TIMEOUT_S`."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_TIMEOUT_S
    try:
        t = float(raw)
    except ValueError:
        raise InputError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not t > 0:
        raise InputError(f"{TIMEOUT_ENV} must be > 0 seconds, got {raw!r}")
    return t


_CURRENT: DistContext | None = None


def current() -> DistContext:
    """The context of the running :func:`session`.

    Outside a session: the process group's ranks if one exists, else the ranks ``torchrun``
    assigned (``RANK``, ``WORLD_SIZE``; ``backend`` ``None``: enough for :func:`shard` and
    :func:`is_main`, not for collectives), else a single process.
    """
    if _CURRENT is not None:
        return _CURRENT
    if dist.is_available() and dist.is_initialized():  # a group somebody else created
        return DistContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
        )
    if launched_by_torchrun():  # before joining: the rank torchrun assigned, no group yet
        return DistContext(
            rank=_env_int("RANK", 0),
            world_size=max(1, _env_int("WORLD_SIZE", 1)),
            local_rank=_env_int("LOCAL_RANK", 0),
        )
    return DistContext()


def rank() -> int:
    """This process's global rank (0 outside a job)."""
    return current().rank


def world_size() -> int:
    """Number of ranks (1 outside a job)."""
    return current().world_size


def is_main() -> bool:
    """True on rank 0 (and in a single process)."""
    return current().rank == 0


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
                "--device cuda to put rank k on cuda:k",
                device,
            )
        torch.cuda.set_device(device)
        return device
    if device.type == "mps":
        raise InputError(
            "distributed training does not run on Apple MPS; use --device cpu or one process"
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
        local = _env_int("LOCAL_RANK", 0)
        return DistContext(
            rank=dist.get_rank(),
            world_size=world,
            local_rank=local,
            device=_local_device(dev, local, world) if world > 1 else dev,
            backend=str(dist.get_backend()),
            timeout_s=timeout,
            owns_group=False,
        )
    world = _env_int("WORLD_SIZE", 1) if launched_by_torchrun() else 1
    if world <= 1:
        return DistContext(device=dev, timeout_s=timeout)
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed support")
    rk, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = _local_device(dev, local, world)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"timeout": datetime.timedelta(seconds=timeout)}
    if backend == "nccl":
        kwargs["device_id"] = dev
    try:
        dist.init_process_group(backend=backend, **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {rk}/{world}: could not join the torchrun job ({backend}): {_first_line(exc)}"
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
    global _CURRENT
    ctx = setup(device, timeout_s=timeout_s)
    previous, _CURRENT = _CURRENT, ctx
    ok = False
    try:
        with _translate(ctx, "a collective operation"):
            yield ctx
        ok = True
    finally:
        _CURRENT = previous
        teardown(ctx, ok=ok)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _is_comm_error(exc: BaseException) -> bool:
    dist_error = getattr(dist, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc)
    return any(
        s in text
        for s in ("Gloo", "gloo", "NCCL", "Connection closed", "Connection reset", "Timed out")
    )


@contextlib.contextmanager
def _translate(ctx: DistContext, what: str) -> Iterator[None]:
    """Turn a backend error inside a collective into a :class:`DistributedError`."""
    if ctx.distributed and not (dist.is_available() and dist.is_initialized()):
        raise DistributedError(
            f"rank {ctx.rank}/{ctx.world_size}: {what} needs the process group; "
            "run it inside cryogen.distributed.session()"
        )
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as exc:
        if not ctx.distributed or not _is_comm_error(exc):
            raise
        raise DistributedError(
            f"rank {ctx.rank}/{ctx.world_size}: {what} failed: another rank stopped or did not "
            f"answer within {ctx.timeout_s:g} s (see its messages; the limit is "
            f"{TIMEOUT_ENV}): {_first_line(exc)}"
        ) from None


# ---------------------------------------------------------------------------- collectives
def barrier(ctx: DistContext | None = None, what: str = "barrier") -> None:
    """Wait for every rank (no-op in a single process); fails after the timeout."""
    ctx = ctx or current()
    if not ctx.distributed:
        return
    with _translate(ctx, f"waiting for the other ranks at {what}"):
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
    with _translate(ctx, "broadcasting a decision"):
        dist.broadcast(t, src=src)
    return bool(t.item() > 0.5)


def any_flag(flag: bool, ctx: DistContext | None = None) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    ctx = ctx or current()
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.comm_device)
    with _translate(ctx, "agreeing on a decision"):
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
    with _translate(ctx, "synchronising the training step"):
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
    with _translate(ctx, "gathering state for a checkpoint"):
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
    with _translate(ctx, "summing the partial predictions"):
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


# ---------------------------------------------------------------------------- models
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
    with _translate(ctx, "wrapping a network for data parallelism"):
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
    with _translate(ctx, "comparing the replicas"):
        dist.all_gather_object(digests, h.hexdigest())
    return len(set(digests)) == 1


# ---------------------------------------------------------------------------- randomness
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
