"""The validated configuration of a training run (``TrainConfig``), made of sections.

Each section (:mod:`cryogen.train.sections`) is a pydantic model of one concern: the
method, the energy and data terms, the consistency term and its refill, optimisation,
data, budget and run, the IsoNet-style baseline; the networks' sections come from
:mod:`cryogen.model.config`.  ``TrainConfig`` inherits them all, so its fields stay flat:
``config.json``, the configs saved in checkpoints, config files and the command line's
``--set KEY=VALUE`` name fields without a section.

:meth:`TrainConfig.from_sources` fills it from a preset (:mod:`cryogen.train.presets`),
then a config file (JSON, TOML, or YAML when PyYAML is installed), then explicit overrides,
each level replacing the one before.

Conventions
-----------
* Intensities are in units of the training data's standard deviation (the data are
  normalised to mean 0, std 1 before training), so noise scales such as ``sigma_g = 0.05``
  mean 5 % of the data's std.
* Every loss is a per-voxel mean (MSE), not a sum norm ``||.||^2``; ``data_weight`` plays
  the role of ``1 / (2 sigma_n^2)`` of the paper on that per-voxel scale.
* Schedules are functions of the training progress ``p`` in ``[0, 1]``: ``step / steps``
  with a step budget, ``elapsed / (60 minutes)`` with a time budget (the larger of the two
  when both are given).  The paper's "first epoch" of constant ``lambda`` is
  ``lambda_hold`` (a fraction of the run), because a time budget has no fixed epoch count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, model_validator

from cryogen.errors import InputError
from cryogen.model.config import EnergySettings, GeneratorSettings
from cryogen.train.presets import PRESETS
from cryogen.train.sections import (
    ConsistencySettings,
    DataSettings,
    IsoNetSettings,
    MethodSettings,
    ObjectiveSettings,
    OptimisationSettings,
    RunSettings,
)

__all__ = [
    "ADDED_FIELDS",
    "RESUMABLE_FIELDS",
    "TrainConfig",
    "load_config_file",
    "saved_config_fill",
]


class TrainConfig(
    IsoNetSettings,
    RunSettings,
    DataSettings,
    OptimisationSettings,
    ConsistencySettings,
    ObjectiveSettings,
    MethodSettings,
    GeneratorSettings,
    EnergySettings,
):
    """Every setting of a training run, with bounds.  Defaults are the ``cpu`` preset.

    The sections are listed in reverse: pydantic orders the fields from the last base to
    the first, so ``config.json`` reads networks, method, objective, ..., IsoNet.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @model_validator(mode="after")
    def _check_sections_agree(self) -> TrainConfig:
        if 2 * self.data_margin >= self.crop_size:
            raise ValueError(
                f"data_margin ({self.data_margin}) too large for crop {self.crop_size}"
            )
        if 2 * self.adv_margin >= self.crop_size:
            raise ValueError(f"adv_margin ({self.adv_margin}) too large for crop {self.crop_size}")
        for name in ("adv_wedge", "data_wedge"):
            if getattr(self, name) == "subtomogram" and self.consistency_target != "refilled":
                raise ValueError(
                    f"{name} 'subtomogram' pastes the estimate into the refilled subtomogram: "
                    "it needs consistency_target 'refilled'"
                )
        return self

    def sigma_h_at(self, progress: float) -> float:
        """Level of CryoGEN's consistency noise eps_h (before the per-step ``u``)."""
        if self.sigma_h_schedule == "uniform":
            return self.sigma_h
        return self.sigma_h * self.noise_ramp(self.round_at(progress))

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_sources(
        cls,
        preset: str | None = None,
        file: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
        exact: dict[str, Any] | None = None,
    ) -> TrainConfig:
        """Resolve a config: preset defaults < config file < ``overrides``.

        Parameters
        ----------
        preset
            ``"cpu"`` or ``"paper"``; ``None`` takes the file's ``preset`` entry, else ``"cpu"``.
        file
            JSON, TOML or YAML file with any subset of the fields.
        overrides
            Field values (e.g. the CLI's flags); ``None`` values are ignored.  Giving only one
            of ``steps`` / ``minutes`` (in the file or here) clears the other.
        exact
            Field values applied last, ``None`` included (e.g. ``checkpoint_minutes=None``).

        Raises
        ------
        InputError
            Unknown preset, unreadable file, unknown field or value out of bounds.
        """
        file_values = load_config_file(file) if file is not None else {}
        over = {k: v for k, v in (overrides or {}).items() if v is not None}
        over.update(exact or {})
        name = preset or over.get("preset") or file_values.get("preset") or "cpu"
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
        values: dict[str, Any] = dict(PRESETS[name])
        for layer in (file_values, over):
            if ("steps" in layer) != ("minutes" in layer):
                values.pop("steps", None)
                values.pop("minutes", None)
                values["steps" if "minutes" in layer else "minutes"] = None
            values.update(layer)
        values["preset"] = name
        return cls.validated(values, source=str(file) if file is not None else None)

    @classmethod
    def validated(cls, values: dict[str, Any], source: str | None = None) -> TrainConfig:
        """``cls(**values)`` with validation errors turned into one-line ``InputError``."""
        try:
            return cls(**values)
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
                parts.append(f"{loc}: {err.get('msg', 'invalid')}")
            where = f" in {source}" if source else ""
            raise InputError(f"invalid training config{where}: " + "; ".join(parts)) from None


#: Fields a resumed run may change: its budget, where it runs, how often it checkpoints
#: and logs.  The rest (the seed included: it decides the data) must equal the checkpoint's.
RESUMABLE_FIELDS = frozenset(RunSettings.model_fields) - {"seed"}

#: Fields added after runs were saved without them, with the value that reproduces what
#: those runs did: a saved config (config.json, a checkpoint) lacking one gets this value.
ADDED_FIELDS: dict[str, Any] = {
    "sigma_h_schedule": "uniform",
    "adv_wedge": "crop",
    "data_wedge": "crop",
    "d_start": 0.0,
    "refill_tta": False,
    "crop_operator": "hard",
    "fake_noise": "none",
}


def saved_config_fill(saved: dict[str, Any]) -> dict[str, Any]:
    """The ``ADDED_FIELDS`` a saved config lacks, with the values its run used."""
    return {k: v for k, v in ADDED_FIELDS.items() if k not in saved}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config file into a dict: ``.json``, ``.toml``, or ``.yaml``/``.yml`` (PyYAML)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    suffix = p.suffix.lower()
    try:
        text = p.read_text()
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise InputError(
                    f"{p}: reading YAML needs PyYAML (pip install pyyaml); or use JSON or TOML"
                ) from None
            data = yaml.safe_load(text)
        else:
            raise InputError(f"{p}: config files must be .json, .toml or .yaml")
    except InputError:
        raise
    except Exception as exc:  # parse errors of any of the three formats
        raise InputError(f"{p}: cannot parse the config file: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: the config file must hold a mapping of field names to values")
    return data
