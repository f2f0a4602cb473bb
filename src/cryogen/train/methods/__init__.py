"""The training methods behind one step interface (:class:`TrainingMethod`): CryoGEN
(Algorithm 1 of the paper) and the IsoNet-style baseline.  ``METHODS`` maps the
``method`` setting to its class; a new method is one module and one entry."""

from cryogen.train.methods.base import (
    Batch,
    RunParts,
    StepOutput,
    TrainingMethod,
    Wedges,
    draw_batch,
    margin,
    rotate_batch,
)
from cryogen.train.methods.cryogen import CryoGEN, EnergyDraws
from cryogen.train.methods.isonet import IsoNet

#: ``method`` setting -> the class that trains it.
METHODS: dict[str, type[TrainingMethod]] = {m.name: m for m in (CryoGEN, IsoNet)}

__all__ = [
    "METHODS",
    "Batch",
    "CryoGEN",
    "EnergyDraws",
    "IsoNet",
    "RunParts",
    "StepOutput",
    "TrainingMethod",
    "Wedges",
    "draw_batch",
    "margin",
    "rotate_batch",
]
