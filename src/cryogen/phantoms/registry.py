"""The phantoms ``cryogen phantom`` offers, by name, with their default size and voxel size.

Adding a phantom is one :class:`Phantom` entry in :data:`PHANTOMS` plus its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryogen.errors import InputError

if TYPE_CHECKING:
    import torch

# The builders import their modules (and torch) when called, so that the names and
# defaults of the phantoms are known without torch (``cryogen --help``).

__all__ = ["PHANTOMS", "PHANTOM_NAMES", "Phantom", "make_phantom"]

#: ``builder(size, pixel_size, seed)``: ``size`` is ``None`` only for a phantom whose default
#: size is ``None`` (the builder picks one that fits).
Builder = Callable[[int | None, float, int], "torch.Tensor"]


@dataclass(frozen=True)
class Phantom:
    """A phantom ``cryogen phantom NAME`` can build.

    Attributes
    ----------
    name : str
        The name on the command line.
    builder : callable
        ``builder(size, pixel_size, seed) -> (z, y, x) float32 tensor``.
    size : int or None
        Default edge length in voxels (``None``: the smallest that holds the object).
    pixel_size : float
        Default voxel size in Å (for phantoms defined in voxels it only goes into the header).
    description : str
        One line: what the phantom is.
    """

    name: str
    builder: Builder
    size: int | None
    pixel_size: float
    description: str


def _sphere(size: int | None, pixel_size: float, seed: int) -> torch.Tensor:
    from cryogen.phantoms.shapes import paper_sphere

    return paper_sphere(140 if size is None else size)


def _prism(size: int | None, pixel_size: float, seed: int) -> torch.Tensor:
    from cryogen.phantoms.shapes import paper_prism_thickness, prism

    n = 96 if size is None else size
    return prism(n, paper_prism_thickness(n), seed=seed)


def _ribosome(size: int | None, pixel_size: float, seed: int) -> torch.Tensor:
    from cryogen.phantoms.molecules import ribosome_map

    return ribosome_map(pixel_size, size=size)


def _crowded(size: int | None, pixel_size: float, seed: int) -> torch.Tensor:
    from cryogen.phantoms.scene import crowded

    return crowded(128 if size is None else size, pixel_size, seed=seed)


#: Every phantom, in the order the command line lists them.
PHANTOMS: dict[str, Phantom] = {
    p.name: p
    for p in (
        Phantom(
            "sphere",
            _sphere,
            140,
            1.0,
            "the paper's hollow sphere: outer diameter size / 2, shell min(4, size / 8) px",
        ),
        Phantom(
            "prism",
            _prism,
            96,
            1.0,
            "the paper's triangular plate, 20 px thick at 96^3, in a random orientation",
        ),
        Phantom(
            "ribosome",
            _ribosome,
            None,
            10.0,
            "molmap-like density of the cryo-EM ribosome 6ZU5 (resolution 2 x pixel size)",
        ),
        Phantom(
            "crowded",
            _crowded,
            128,
            10.0,
            "12 rotated ribosomes, a lipid vesicle and 3 filaments",
        ),
    )
}

#: The names of :data:`PHANTOMS`, in the command line's order.
PHANTOM_NAMES: tuple[str, ...] = tuple(PHANTOMS)


def make_phantom(
    name: str, *, size: int | None = None, pixel_size: float | None = None, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Build a phantom of :data:`PHANTOMS` by name with its defaults (``cryogen phantom NAME``).

    ========  ============  ============  =====================================================
    name      size          voxel size    geometry
    ========  ============  ============  =====================================================
    sphere    140           1.0 Å         outer diameter ``size / 2``, shell
                                          ``min(4, size / 8)`` px (the paper's at 140)
    prism     96            1.0 Å         thickness ``20 * size / 96`` px, random rotation
                                          drawn from ``seed``
    ribosome  fits (38)     10.0 Å        resolution ``2 * pixel size``; ``seed`` unused
    crowded   128           10.0 Å        12 ribosomes, a vesicle, 3 filaments from ``seed``
    ========  ============  ============  =====================================================

    Sphere and prism are defined in voxels: their voxel size only goes into the file header.

    Returns
    -------
    tuple of (torch.Tensor, float)
        The ``(z, y, x)`` float32 volume and its voxel size in Å.
    """
    phantom = PHANTOMS.get(name)
    if phantom is None:
        raise InputError(f"unknown phantom {name!r}; choose one of {', '.join(PHANTOMS)}")
    if size is not None and int(size) < 1:
        raise InputError(f"size must be a positive int, got {size}")
    if pixel_size is None:
        voxel = phantom.pixel_size
    else:
        from cryogen.phantoms.geometry import check_positive

        voxel = check_positive(pixel_size, "pixel_size")
    n = phantom.size if size is None else int(size)
    return phantom.builder(n, voxel, seed), voxel
