"""The missing wedges of a training run: the masks of ``T_M``, one per tilt range.

A run trains on one tilt range, or on tomograms of several (a lab's data mixes -60/+60,
-58/+60, -60/+54...): then every subtomogram keeps the wedge of its own tomogram, and a
batch carries one mask per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cryogen.train.config import TrainConfig
from cryogen.train.data import SubtomoDataset
from cryogen.wedge import missing_wedge_mask

__all__ = ["Wedges"]


@dataclass(frozen=True)
class Wedges:
    """The half-spectrum masks ``M`` of ``T_M`` of a run: one per tilt range it trains on,
    at the training crops' size and at the whole subtomograms' (``(C, C, C // 2 + 1)`` and
    ``(S, S, S // 2 + 1)`` each).

    Attributes
    ----------
    ranges : list of (float, float)
        The distinct tilt ranges, degrees.
    crops, subtomograms : list of torch.Tensor
        The masks of each range.
    of_subtomogram : list of int
        Each subtomogram's range, an index into ``ranges``.
    """

    ranges: list[tuple[float, float]]
    crops: list[torch.Tensor]
    subtomograms: list[torch.Tensor]
    of_subtomogram: list[int]

    @classmethod
    def for_run(cls, config: TrainConfig, data: SubtomoDataset, device: torch.device) -> Wedges:
        """The masks of the subtomograms' tilt ranges (the dataset's, one per volume, or
        the run's) at the dataset's crop and subtomogram sizes."""
        per_sub = data.subtomogram_tilt_ranges() or [(config.tilt_min, config.tilt_max)] * len(data)
        ranges = sorted(set(per_sub))
        c, s = data.crop_size, data.size
        return cls(
            ranges=ranges,
            crops=[missing_wedge_mask((c, c, c), *r, device=device) for r in ranges],
            subtomograms=[missing_wedge_mask((s, s, s), *r, device=device) for r in ranges],
            of_subtomogram=[ranges.index(r) for r in per_sub],
        )

    @property
    def crop(self) -> torch.Tensor:
        """The crops' mask of a run with one tilt range."""
        if len(self.ranges) != 1:
            raise ValueError("the run has several tilt ranges: use crop_for(index)")
        return self.crops[0]

    @property
    def subtomogram(self) -> torch.Tensor:
        """The subtomograms' mask of a run with one tilt range."""
        if len(self.ranges) != 1:
            raise ValueError("the run has several tilt ranges: use subtomogram_for(i)")
        return self.subtomograms[0]

    def crop_for(self, index: Sequence[int]) -> torch.Tensor:
        """The mask for crops of the subtomograms ``index``: ``(C, C, C // 2 + 1)`` where the
        run has one tilt range, else one per sample ``(B, 1, C, C, C // 2 + 1)``."""
        if len(self.ranges) == 1:
            return self.crops[0]
        return torch.stack([self.crops[self.of_subtomogram[i]] for i in index])[:, None]

    def subtomogram_for(self, i: int) -> torch.Tensor:
        """The mask of subtomogram ``i``'s tilt range at the subtomogram size."""
        return self.subtomograms[self.of_subtomogram[i]]

    def range_of(self, i: int) -> tuple[float, float]:
        """Subtomogram ``i``'s tilt range, degrees."""
        return self.ranges[self.of_subtomogram[i]]
