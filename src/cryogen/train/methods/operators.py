"""The wedge operator that E's inputs and the data term see on a training crop.

CryoGEN compares crops through ``T_M``: E tells real crops ``T_M y`` from fakes
``T_M R x_hat``, and the data term compares ``T_M x_hat`` with ``T_M y``.  On a crop of a
larger volume ``T_M`` on the crop's grid is not the wedge the data went through: cutting
the crop spreads the missing wedge's content of the truth into the measured band, so
even the true volume's fake differs from a real crop and its data term is not zero.
``crop_operator`` chooses the operator, the same one on both sides:

``"hard"``
    ``T_M`` on the crop's grid, the paper's (exact where the crop is the whole volume).
``"tapered"``
    ``T_M'(w x)``: ``w`` a cosine taper over ``crop_taper`` voxels at each face (no hard
    edge, so the crop's spectrum is smeared by a few Fourier pixels only), ``M'`` the
    measured region less a guard band of ``wedge_guard`` Fourier pixels along the missing
    wedge (:func:`cryogen.wedge.guarded_wedge_mask`), which the smear does not cross.  A
    crop of wedged data and a crop of the truth then look the same through it.
``"auto"`` (the default)
    ``"hard"`` where every crop is a whole volume (the paper's whole-volume protocol, where
    it is exact) or real crops are not wedged (``real_wedge`` false), else ``"tapered"``
    with a taper of at most a quarter of the crop edge (:func:`resolve_operator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from cryogen.errors import InputError
from cryogen.train.config import TrainConfig
from cryogen.train.methods.base import Batch
from cryogen.train.wedges import Wedges
from cryogen.wedge import cosine_taper, guarded_wedge_mask, missing_wedge_mask, wedge_operator

__all__ = ["CropOperator", "CropWedge", "resolve_operator", "taper_window"]

OperatorKind = Literal["hard", "tapered"]


def resolve_operator(config: TrainConfig, crop: int, whole: bool) -> tuple[OperatorKind, int]:
    """The operator kind and taper width a run with ``config`` uses on ``crop^3`` crops;
    ``whole``: every crop is a whole volume.  ``"auto"`` is ``"hard"`` on whole volumes or
    with unwedged real crops, else ``"tapered"`` with ``min(crop_taper, crop // 4)``."""
    kind = config.crop_operator
    if kind == "auto":
        if whole or not config.real_wedge:
            return "hard", 0
        return "tapered", min(config.crop_taper, crop // 4)
    return kind, config.crop_taper


def taper_window(
    size: int, width: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Separable window ``(size, size, size)``: 1 inside, a half cosine rising over
    ``width`` voxels at each face (nearly 0 at the faces, so the periodic crop has no
    jump); all ones for ``width=0`` (:func:`cryogen.wedge.cosine_taper`)."""
    if not 0 <= 2 * width <= size:
        raise ValueError(f"a taper of {width} voxels at each face does not fit a {size}^3 crop")
    return cosine_taper((size, size, size), width, device=device)


@dataclass(frozen=True)
class CropWedge:
    """The operator of one tilt range on crops of one edge: ``x -> T_M(window * x)``.

    Attributes
    ----------
    mask : torch.Tensor
        Half-spectrum mask ``(C, C, C // 2 + 1)``: the binary ``M``, or ``M`` less the
        guard band.
    window : torch.Tensor or None
        ``(C, C, C)`` taper, None for the hard operator.
    """

    mask: torch.Tensor
    window: torch.Tensor | None

    @classmethod
    def make(
        cls,
        size: int,
        tilt_range: tuple[float, float],
        kind: OperatorKind = "hard",
        taper: int = 16,
        guard: float = 3.0,
        *,
        device: torch.device | str | None = None,
    ) -> CropWedge:
        """The ``kind`` operator on ``size^3`` crops of data wedged by ``tilt_range``."""
        shape = (size, size, size)
        if kind == "hard":
            return cls(missing_wedge_mask(shape, *tilt_range, device=device), None)
        mask = guarded_wedge_mask(shape, *tilt_range, guard, device=device)
        return cls(mask, taper_window(size, taper, device=device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The operator on ``x`` ``(..., C, C, C)``."""
        return wedge_operator(x if self.window is None else x * self.window, self.mask)


class CropOperator:
    """The operator of a run's ``crop_operator`` setting, on its batches: one
    :class:`CropWedge` per tilt range of the run (:class:`~cryogen.train.wedges.Wedges`).

    The hard operator is the batch's own ``T_M`` (:meth:`Batch.tm`), so a run with
    ``crop_operator="hard"`` computes exactly what it did before the setting existed.
    """

    def __init__(
        self, config: TrainConfig, wedges: Wedges, device: torch.device, *, whole: bool = False
    ) -> None:
        self.of_subtomogram = list(wedges.of_subtomogram)
        size = int(wedges.crops[0].shape[0])
        self.kind, self.taper = resolve_operator(config, size, whole)
        self.guard = config.wedge_guard
        if self.kind == "tapered" and 2 * self.taper > size:
            raise InputError(
                f"crop_taper ({self.taper}) is more than half the crop ({size}^3)",
                advice="crop_taper",
            )
        self.ops = [
            CropWedge.make(size, r, self.kind, self.taper, self.guard, device=device)
            for r in wedges.ranges
        ]

    def describe(self) -> str:
        """``"hard"`` or ``"tapered (16-voxel taper, 3-pixel guard band)"``, for run.log."""
        if self.kind == "hard":
            return "hard"
        return f"tapered ({self.taper}-voxel taper, {self.guard:g}-pixel guard band)"

    def mask_for(self, index: Sequence[int]) -> torch.Tensor:
        """The mask for crops of the subtomograms ``index``: shared, or one per sample
        ``(B, 1, C, C, C // 2 + 1)`` where the run has several tilt ranges."""
        if len(self.ops) == 1:
            return self.ops[0].mask
        return torch.stack([self.ops[self.of_subtomogram[i]].mask for i in index])[:, None]

    def __call__(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The operator on ``x`` ``(B, 1, C, C, C)``, crops of ``batch``'s subtomograms."""
        if self.kind == "hard":
            return batch.tm(x)
        window = self.ops[0].window
        assert window is not None
        return wedge_operator(x * window, self.mask_for(batch.index))
