"""Where this process stands in a ``torchrun`` job: :class:`DistContext`, the environment
``torchrun`` sets, the context of the running session (:func:`current`), and the
translation of the communication backend's errors into :class:`DistributedError`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from cryogen.errors import CryogenError, InputError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "DistContext",
    "DistributedError",
    "activated",
    "current",
    "env_int",
    "first_line",
    "is_main",
    "launched_by_torchrun",
    "rank",
    "timeout_from_env",
    "translate_errors",
    "world_size",
]

TIMEOUT_ENV = "CRYOGEN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


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
def env_int(name: str, default: int) -> int:
    """The integer environment variable ``name`` (``default`` when unset or empty)."""
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
            local_rank=env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
        )
    if launched_by_torchrun():  # before joining: the rank torchrun assigned, no group yet
        return DistContext(
            rank=env_int("RANK", 0),
            world_size=max(1, env_int("WORLD_SIZE", 1)),
            local_rank=env_int("LOCAL_RANK", 0),
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


@contextlib.contextmanager
def activated(ctx: DistContext) -> Iterator[DistContext]:
    """Make ``ctx`` what :func:`current` returns inside the ``with`` block."""
    global _CURRENT
    previous, _CURRENT = _CURRENT, ctx
    try:
        yield ctx
    finally:
        _CURRENT = previous


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters)."""
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
def translate_errors(ctx: DistContext, what: str) -> Iterator[None]:
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
            f"{TIMEOUT_ENV}): {first_line(exc)}"
        ) from None
