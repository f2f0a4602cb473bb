"""The step interface every training method implements, and what a step works on.

A method computes the losses of one batch (Lightning's ``training_step``): the loop draws
the :class:`Batch`, calls :meth:`TrainingMethod.losses`, and updates ``g`` on the returned
objective; everything else (budget, learning rate, checkpoints, logging, signals) is the
loop's.  A method that trains a second network (CryoGEN's energy model) updates it inside
its step, through the run's :class:`~cryogen.train.optim.Optimisers`.

The batch is the seam for what varies per sample: its wedge ``T_M`` is the run's, or one
mask per sample when the run trains on tomograms of different tilt ranges (one model for
all of them); with half-sets the crops a loss compares against come from the other half
than the input (Noise2Noise).  Methods apply ``T_M`` through
:meth:`Batch.tm` and take their inputs from the batch, so such changes stay in how
batches are drawn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from cryogen.rotations import rotate, rotate_inverse
from cryogen.train.config import TrainConfig
from cryogen.train.data import SubtomoDataset
from cryogen.train.networks import Networks
from cryogen.train.optim import Optimisers
from cryogen.train.refill import Refill
from cryogen.train.state import RandomStreams
from cryogen.train.wedges import Wedges
from cryogen.wedge import wedge_operator

__all__ = [
    "Batch",
    "RunParts",
    "StepOutput",
    "TrainingMethod",
    "Wedges",
    "draw_batch",
    "margin",
    "rotate_batch",
]


@dataclass
class Batch:
    """One step's crops and the draws that go with them.

    Attributes
    ----------
    step
        Steps done before this one.
    index, offsets
        Each sample's subtomogram and the crop's origin ``(z, y, x)`` inside it.
    y
        The measured crops ``(B, 1, C, C, C)``: with half-sets, each sample's input half.
    rotations
        Each sample's wedge-changing rotation ``R`` (an index of ``CUBE_ROTATIONS``).
    u
        The step's noise factor ``u ~ U(0, 1]``.
    wedge
        The mask of ``T_M`` for these crops: ``(C, C, C // 2 + 1)`` for all of them, or
        one per sample, ``(B, 1, C, C, C // 2 + 1)``.
    halves
        With half-sets: the half each sample's input ``y`` comes from (0 or 1); its loss
        compares against the other half (Noise2Noise).  ``None`` without half-sets.
    other
        With half-sets: the other half's crops at the same places ``(B, 1, C, C, C)``.
    """

    step: int
    index: list[int]
    offsets: list[tuple[int, int, int]]
    y: torch.Tensor
    rotations: list[int]
    u: float
    wedge: torch.Tensor = field(repr=False)
    halves: list[int] | None = None
    other: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.index)

    def tm(self, x: torch.Tensor) -> torch.Tensor:
        """``T_M x`` for crops ``x`` ``(B, 1, C, C, C)`` of this batch."""
        return wedge_operator(x, self.wedge)


def draw_batch(
    data: SubtomoDataset, streams: RandomStreams, step: int, size: int, wedges: Wedges
) -> Batch:
    """Draw a batch: subtomograms and crop origins (the dataset's stream; with half-sets,
    then which half is each sample's input), then ``u`` and the rotations (the step's
    stream)."""
    idx, offs = data.draw(size)
    halves, other = None, None
    if data.halves is None:
        y = data.crop(data.subtomos, idx, offs)  # (B, 1, C, C, C)
    else:
        halves = data.draw_halves(size)
        y = data.half_crops(data.halves, halves, idx, offs)
        other = data.half_crops(data.halves, [1 - h for h in halves], idx, offs)
    u = streams.u()
    rots = streams.rotations(size)
    return Batch(
        step=step,
        index=idx,
        offsets=offs,
        y=y,
        rotations=rots,
        u=u,
        wedge=wedges.crop_for(idx),
        halves=halves,
        other=other,
    )


def rotate_batch(x: torch.Tensor, rots: Sequence[int], inverse: bool = False) -> torch.Tensor:
    """Rotate each batch element ``x[b]`` ``(C, z, y, x)`` by its own cube rotation."""
    f = rotate_inverse if inverse else rotate
    return torch.stack([f(x[b], r) for b, r in enumerate(rots)])


def margin(x: torch.Tensor, m: int) -> torch.Tensor:
    """``x`` without ``m`` voxels at each face of its last three dimensions."""
    return x if m <= 0 else x[..., m:-m, m:-m, m:-m]


@dataclass
class StepOutput:
    """What a method's step returns.

    Attributes
    ----------
    loss
        ``g``'s objective (a scalar; with gradient where ``g`` is to be updated).
    row
        The step's logged values by column of :data:`~cryogen.train.losses.COLUMNS`
        (``loss`` and ``grad_norm`` are added by the loop).
    """

    loss: torch.Tensor
    row: dict[str, float]


@dataclass(frozen=True)
class RunParts:
    """The parts of a run a method works with, shared with the loop."""

    config: TrainConfig
    data: SubtomoDataset
    networks: Networks
    optimisers: Optimisers
    streams: RandomStreams
    refill: Refill
    wedges: Wedges


class TrainingMethod(ABC):
    """One training algorithm: the losses of a batch."""

    #: the ``method`` setting that selects it
    name: ClassVar[str]

    def __init__(self, parts: RunParts) -> None:
        self.cfg = parts.config
        self.data = parts.data
        self.networks = parts.networks
        self.optimisers = parts.optimisers
        self.streams = parts.streams
        self.refill = parts.refill
        self.wedges = parts.wedges
        self.device = parts.networks.device

    @staticmethod
    def uses_energy(config: TrainConfig) -> bool:
        """Whether the method trains an energy model with these settings."""
        return False

    def before_batch(self, step: int, progress: float) -> dict[str, float]:
        """Work due before the batch is drawn (refills); values to log."""
        return {}

    def describe(self) -> list[str]:
        """Lines about the method's own choices for ``run.log``'s header."""
        return []

    @abstractmethod
    def losses(self, batch: Batch, progress: float) -> StepOutput:
        """The losses of one batch, at ``progress`` of the schedule."""
