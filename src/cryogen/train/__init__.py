"""Training of the generator: config, data, engine (CryoGEN and the IsoNet-style baseline),
checkpoints."""

from cryogen.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from cryogen.train.config import PRESETS, TrainConfig
from cryogen.train.data import Normalisation, SubtomoDataset, compute_normalisation
from cryogen.train.engine import TrainResult, build_energy, build_generator, train

__all__ = [
    "PRESETS",
    "Normalisation",
    "SubtomoDataset",
    "TrainConfig",
    "TrainResult",
    "build_energy",
    "build_generator",
    "compute_normalisation",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
