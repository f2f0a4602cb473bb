"""Data-parallel training and prediction with ``torch.distributed`` (launched by ``torchrun``).

One process per device ("rank"); ``torchrun`` starts them and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``::

    torchrun --standalone --nproc_per_node=4 -m cryogen train tomo.mrc -o run/

:func:`session` joins the job (NCCL on CUDA, gloo on the CPU, the device picked by
``LOCAL_RANK``) and leaves it at the end; outside ``torchrun`` it is a no-op and every helper
here behaves as in a single process (rank 0 of 1), so the library needs no second code path.

Rules the training loop follows (and any other user of this module should):

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
``--signal=TERM@120``, ``scancel``) likewise; the training loop treats both as "checkpoint
after this step", agreed on by all ranks, and ``torchrun`` waits 30 s before killing.

Prediction shares work in two ways: whole tomograms (:func:`shard`, each output written by
the rank that computed it) or the tiles of one tomogram (:func:`shard_predictor` in
``sliding_window_inference``, then :func:`all_reduce_sum` of the blended partial outputs:
blending is linear, so the sum over ranks is the single-process result).
"""

from cryogen.distributed.collectives import (
    all_reduce_sum,
    any_flag,
    barrier,
    broadcast_flag,
    gather_objects,
    step_sync,
)
from cryogen.distributed.context import (
    DEFAULT_TIMEOUT_S,
    TIMEOUT_ENV,
    DistContext,
    DistributedError,
    current,
    is_main,
    launched_by_torchrun,
    rank,
    timeout_from_env,
    world_size,
)
from cryogen.distributed.group import session, setup, teardown
from cryogen.distributed.models import replicas_equal, unwrap, wrap_ddp
from cryogen.distributed.work import (
    rank_seed,
    rank_seed_sequence,
    shard,
    shard_predictor,
    shard_range,
    silence_other_ranks,
)

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
