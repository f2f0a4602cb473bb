"""The two methods of a benchmark trained at the same time, each in its own process pinned to
one half of this process's CPUs (``concurrent``).

Both see the same machine load, which a wall-clock comparison on a shared machine needs, and
a CPU run takes about half the time (the cpu preset trains on one thread).  Odd seeds swap
the halves, so that over a repeat any difference between the CPUs (one may serve more
interrupts) falls on both methods alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from cryogen import device
from cryogen.benchmark.settings import METHOD_LABELS, METHODS
from cryogen.errors import OutputError

if TYPE_CHECKING:
    from cryogen.benchmark.job import MethodJob, MethodOutcome, Say

__all__ = ["method_worker", "run_methods_concurrently"]

logger = logging.getLogger(__name__)

#: Seconds a finished child may take to hand over its last message.
_LAST_MESSAGE_S = 5.0


def method_worker(
    job: MethodJob, method: str, cfg: Any, cpus: list[int] | None, queue: Any
) -> None:
    """Child process of :func:`run_methods_concurrently`: pin to ``cpus``, run ``job`` for
    ``method`` and report every line, stage and the outcome through ``queue``."""
    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if cfg.threads is None and cpus:  # torch's default would count the parent's CPUs
            torch.set_num_threads(len(cpus))
        minute = [0]

        def heartbeat(info: dict[str, Any]) -> None:
            m = int(info["elapsed_s"] // 60)
            if m > minute[0]:
                minute[0] = m
                queue.put(
                    ("say", method, f"  {METHOD_LABELS[method]}: step {info['step']}, {m} min")
                )

        def on_stage(kind: str, value: Any) -> None:
            if kind == "training":
                value = replace(value, cpus=cpus, separate_process=True)
            queue.put(("stage", method, kind, value))

        outcome = job.run(
            method,
            cfg,
            progress=False,
            tell=lambda msg: queue.put(("say", method, msg)),
            on_stage=on_stage,
            callback=heartbeat,
        )
        queue.put(("done", method, outcome))
    except KeyboardInterrupt:
        queue.put(("done", method, None))
    except BaseException as exc:  # reported to the parent, which raises
        import traceback

        one_line = " ".join(f"{type(exc).__name__}: {exc}".split())
        queue.put(("error", method, one_line, traceback.format_exc()))


def _assign_cpus(seed: int, tell: Say) -> dict[str, list[int] | None]:
    """The CPUs of each method: one half each (swapped on odd seeds), or all shared."""
    halves = device.cpu_halves()
    if halves is None:
        tell(
            "only one CPU available: the two methods share it (--concurrent)"
            if hasattr(os, "sched_getaffinity")
            else "no CPU pinning on this system: the two methods share the CPUs (--concurrent)"
        )
        return dict.fromkeys(METHODS)
    order = halves if seed % 2 == 0 else halves[::-1]
    cpus: dict[str, list[int] | None] = dict(zip(METHODS, order, strict=True))
    tell(
        "training both methods at the same time: "
        + ", ".join(f"{METHOD_LABELS[m]} on CPUs {cpus[m]}" for m in METHODS)
    )
    return cpus


class _Collector:
    """The parent's side: messages of the children until every one has finished or failed."""

    def __init__(self, procs: dict[str, Any], queue: Any, tell: Say, on_stage: Any) -> None:
        self.procs, self.queue, self.tell, self.on_stage = procs, queue, tell, on_stage
        self.outcomes: dict[str, MethodOutcome | None] = {}
        self.errors: dict[str, str] = {}

    def pending(self) -> bool:
        return len(self.outcomes) + len(self.errors) < len(self.procs)

    def next_message(self) -> tuple[Any, ...] | None:
        """The next message; None after a second without one (a child that died without a
        last message is then counted as failed)."""
        import queue as queue_mod

        with suppress(queue_mod.Empty):
            return self.queue.get(timeout=1.0)  # type: ignore[no-any-return]
        for m, p in self.procs.items():
            if m not in self.outcomes and m not in self.errors and not p.is_alive():
                try:  # a last message may still be in the pipe
                    return self.queue.get(timeout=_LAST_MESSAGE_S)  # type: ignore[no-any-return]
                except queue_mod.Empty:
                    self.errors[m] = f"its process ended with exit code {p.exitcode}"
        return None

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind, method = msg[0], msg[1]
        if kind == "say":
            self.tell(msg[2])
        elif kind == "stage":
            self.on_stage(method, msg[2], msg[3])
        elif kind == "done":
            self.outcomes[method] = msg[2]
        else:
            logger.error("%s failed:\n%s", method, msg[3])
            self.errors[method] = msg[2]


def run_methods_concurrently(
    job: MethodJob,
    configs: dict[str, Any],
    tell: Say,
    on_stage: Callable[[str, str, Any], None],
) -> dict[str, MethodOutcome]:
    """Run ``job`` for both methods at the same time, each in its own process pinned to one
    half of this process's CPUs.  Progress lines come back through ``tell``, finished stages
    through ``on_stage(method, kind, value)``; an interrupted or failed child raises
    ``OutputError`` (one line) once both have stopped (an interrupted training keeps its
    checkpoint)."""
    import multiprocessing as mp

    cpus = _assign_cpus(job.settings.seed, tell)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = {
        m: ctx.Process(
            target=method_worker, args=(job, m, configs[m], cpus[m], queue), name=f"cryogen-{m}"
        )
        for m in METHODS
    }
    for p in procs.values():
        p.start()
    collector = _Collector(procs, queue, tell, on_stage)
    interrupted, finished = False, False
    try:
        while collector.pending():
            msg = collector.next_message()
            if msg is not None:
                collector.handle(msg)
        finished = True
    except KeyboardInterrupt:
        interrupted = True  # the children got the signal too and write their checkpoints
    finally:
        if not (finished or interrupted):  # this process is ending (SIGTERM, an error):
            for p in procs.values():  # the children stop too, after their checkpoints
                if p.is_alive():
                    p.terminate()
        for p in procs.values():
            p.join(timeout=None if interrupted else 60)
            if p.is_alive():
                p.terminate()
    if collector.errors:
        raise OutputError(
            "; ".join(
                f"training {METHOD_LABELS[m]} failed: {e}" for m, e in collector.errors.items()
            )
            + f" (partial results are in {job.out})"
        )
    if interrupted or any(o is None for o in collector.outcomes.values()):
        raise OutputError(f"training was interrupted; partial results are in {job.out}")
    return {m: o for m, o in collector.outcomes.items() if o is not None}
