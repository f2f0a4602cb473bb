"""The networks of a run, built from their settings: ``g`` and ``E``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cryogen.model.config import EnergySettings, GeneratorSettings

__all__ = ["build_energy", "build_generator", "generator_output", "memory_format"]


def _norm_arg(name: str) -> str | None:
    return None if name == "none" else name


def build_generator(config: GeneratorSettings) -> nn.Module:
    """The generator ``g`` of ``config``: U-Net++ or plain U-Net, residual, zero-init head."""
    from cryogen.nets.unetpp import UNetPlusPlus

    return UNetPlusPlus(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        features=tuple(config.features),
        norm=_norm_arg(config.norm),
        act=config.act,
        dropout=config.dropout,
        deep_supervision=config.deep_supervision,
        residual=True,
        upsample=config.upsample,
        nested=config.arch == "unetpp",
    )


def build_energy(config: EnergySettings) -> nn.Module:
    """The energy model (discriminator) ``E`` of ``config``, returning scores ``(B,)``: global
    (:class:`~cryogen.nets.energy.EnergyModel`) or local
    (:class:`~cryogen.nets.energy.LocalEnergyModel`)."""
    from cryogen.nets.energy import EnergyModel, LocalEnergyModel

    cls = LocalEnergyModel if config.energy_arch == "local" else EnergyModel
    return cls(
        spatial_dims=3,
        in_channels=1,
        features=tuple(config.energy_features),
        fc_features=tuple(config.energy_fc_features),
        act="leakyrelu",
        norm=_norm_arg(config.energy_norm),
        spectral_norm=config.energy_spectral_norm,
        stride=config.energy_stride,
    )


def generator_output(out: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The prediction of ``g``: the tensor itself, or the mean of deep-supervision heads."""
    if isinstance(out, torch.Tensor):
        return out
    return torch.stack([o.float() for o in out]).mean(0)


def memory_format(config: GeneratorSettings) -> torch.memory_format:
    """The memory layout the networks run in: channels-last 3D or contiguous."""
    return torch.channels_last_3d if config.channels_last else torch.contiguous_format
