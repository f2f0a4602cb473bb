"""The two networks of CryoGEN: the U-Net++ generator ``g`` and the energy model ``E``."""

from cryogen.nets.energy import EnergyModel
from cryogen.nets.unetpp import UNetPlusPlus, count_parameters

__all__ = ["UNetPlusPlus", "EnergyModel", "count_parameters"]
