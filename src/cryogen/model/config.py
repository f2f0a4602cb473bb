"""The networks' settings: the sections of a run's configuration that describe the
generator ``g`` and the energy model ``E``.

They are sections of the training configuration (``cryogen.train.TrainConfig`` is made of
them and of the training sections), kept here because prediction needs them to rebuild a
trained generator without knowing anything about training.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EnergySettings", "GeneratorSettings", "NormName"]

NormName = Literal["none", "instance", "batch", "group"]


class GeneratorSettings(BaseModel):
    """The generator ``g``: a 3D U-Net++ (the paper's) or a plain U-Net, residual."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: Literal["unetpp", "unet"] = Field(
        "unet",
        description="generator: U-Net++ (paper) or a plain U-Net with the same blocks "
        "(cpu preset: 3.6x the steps on a CPU, measured better in 15 minutes)",
    )
    features: tuple[int, ...] = Field(
        (8, 16, 32, 64, 128), min_length=2, max_length=6, description="generator widths per level"
    )
    norm: NormName = Field("none", description="generator normalisation")
    act: str = Field("leakyrelu", description="generator activation")
    dropout: float = Field(0.0, ge=0.0, le=0.9, description="generator dropout probability")
    deep_supervision: bool = Field(
        False, description="U-Net++ deep supervision (mean of heads; not with arch unet)"
    )
    upsample: Literal["deconv", "trilinear"] = Field("deconv", description="generator upsampling")
    channels_last: bool = Field(
        True, description="channels-last 3D memory layout (faster convolutions on CPU)"
    )

    @model_validator(mode="after")
    def _check_generator(self) -> GeneratorSettings:
        if any(int(f) < 1 for f in self.features):
            raise ValueError("network widths must be positive")
        if self.deep_supervision and self.arch != "unetpp":
            raise ValueError("deep_supervision needs arch 'unetpp' (a plain U-Net has one head)")
        return self

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> GeneratorSettings:
        """The generator section of a saved run configuration (other fields ignored)."""
        return cls.model_validate({k: v for k, v in saved.items() if k in cls.model_fields})


class EnergySettings(BaseModel):
    """The energy model ``E`` (the discriminator of the GAN view)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    energy_arch: Literal["global", "local"] = Field(
        "global",
        description="E's head: global (features pooled over the input, then fully connected "
        "layers: the paper's) or local (unpadded convolutions, stride 1 first, a score per "
        "position of a 17-voxel receptive field, averaged: a texture critic)",
    )
    energy_features: tuple[int, ...] = Field(
        (8, 16, 32, 32), min_length=1, max_length=6, description="E's conv widths (paper: four)"
    )
    energy_fc_features: tuple[int, ...] = Field(
        (32, 16),
        min_length=0,
        max_length=4,
        description="E's hidden fully connected widths (local: of its per-position head)",
    )
    energy_norm: NormName = Field("none", description="E's normalisation")
    energy_stride: int = Field(
        2, ge=1, le=4, description="stride of E's convolutions (local: of the 2nd and 3rd)"
    )
    energy_spectral_norm: bool = Field(True, description="spectral normalisation of E's layers")

    @model_validator(mode="after")
    def _check_energy(self) -> EnergySettings:
        if any(int(f) < 1 for f in self.energy_features):
            raise ValueError("network widths must be positive")
        if any(int(f) < 1 for f in self.energy_fc_features):
            raise ValueError("energy_fc_features must be positive")
        return self
