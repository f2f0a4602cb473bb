"""A trained model, independent of how it was trained: the networks' settings and their
construction, the intensity normalisation, the checkpoint format, and loading a checkpoint
for prediction.  Training (:mod:`cryogen.train`) and prediction (:mod:`cryogen.predict`)
both build on this package; prediction never imports training."""

from cryogen.model.checkpoint import (
    FORMAT,
    LAST,
    SNAPSHOT_DIR,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
    snapshot_path,
)
from cryogen.model.config import EnergySettings, GeneratorSettings
from cryogen.model.factory import build_energy, build_generator, generator_output, memory_format
from cryogen.model.loading import LoadedModel, load_model
from cryogen.model.normalisation import Normalisation, compute_normalisation

__all__ = [
    "FORMAT",
    "LAST",
    "SNAPSHOT_DIR",
    "EnergySettings",
    "GeneratorSettings",
    "LoadedModel",
    "Normalisation",
    "build_energy",
    "build_generator",
    "compute_normalisation",
    "find_checkpoint",
    "generator_output",
    "load_checkpoint",
    "load_model",
    "memory_format",
    "save_checkpoint",
    "snapshot_path",
]
