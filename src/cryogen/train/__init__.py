"""Training of the generator: config, data, engine (CryoGEN and the IsoNet-style baseline)."""

from cryogen.train.config import PRESETS, TrainConfig
from cryogen.train.data import SubtomoDataset
from cryogen.train.engine import TrainResult, train

__all__ = [
    "PRESETS",
    "SubtomoDataset",
    "TrainConfig",
    "TrainResult",
    "train",
]
