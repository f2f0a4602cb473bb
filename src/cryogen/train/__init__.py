"""Training of the generator: CryoGEN (Algorithm 1 of the paper) and the IsoNet-style
baseline, with the same data, networks, optimiser and budget.

:func:`train` runs a :class:`Trainer` built from a :class:`TrainConfig` (sections resolved
from a preset, a config file and overrides) and writes the run folder; :data:`LOSS_COLUMNS`
and :data:`SHOWN_TERMS` come from the one registry of logged terms in
:mod:`cryogen.train.losses`.
"""

from cryogen.train.config import (
    RESUMABLE_FIELDS,
    TrainConfig,
    load_config_file,
    saved_config_fill,
)
from cryogen.train.data import SubtomoDataset
from cryogen.train.loop import TrainResult
from cryogen.train.losses import (
    LOSS_COLUMNS,
    SHOWN_TERMS,
    discriminator_loss,
    generator_adv_loss,
)
from cryogen.train.presets import PRESETS
from cryogen.train.trainer import Trainer, train

__all__ = [
    "LOSS_COLUMNS",
    "PRESETS",
    "RESUMABLE_FIELDS",
    "SHOWN_TERMS",
    "SubtomoDataset",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "discriminator_loss",
    "generator_adv_loss",
    "load_config_file",
    "saved_config_fill",
    "train",
]
