"""A crowded cellular scene: rotated ribosomes, a lipid vesicle and actin-like filaments.

Densities are relative to the ribosome map (maximum 1); every object is blurred to the
ribosomes' resolution (two pixels) and objects are combined with a voxelwise maximum.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from cryogen.errors import InputError
from cryogen.phantoms.geometry import Shape, as_shape3, check_positive, random_rotation
from cryogen.phantoms.molecules import MOLMAP_SIGMA_FACTOR, ribosome_density

__all__ = [
    "FILAMENT_RADIUS_A",
    "MEMBRANE_LEAFLET_OFFSET_A",
    "MEMBRANE_LEAFLET_THICKNESS_A",
    "PROTEIN_LEVEL",
    "crowded",
]

logger = logging.getLogger(__name__)

# Densities of the crowded scene, relative to the ribosome map (max 1).
# Plateau of the filaments and of the membrane's head-group layers: about the median of the
# ribosome map inside its 10 %-of-maximum contour (0.52-0.55 at 5-20 A pixels).
PROTEIN_LEVEL = 0.5
MEMBRANE_LEAFLET_OFFSET_A = 15.0  # head-group layers at +-15 A from the mid-plane (~4 nm bilayer)
MEMBRANE_LEAFLET_THICKNESS_A = 10.0
FILAMENT_RADIUS_A = 35.0  # actin-like, 7 nm diameter

#: Placement tries per ribosome before the candidate with the largest clearance is taken.
PLACEMENT_TRIES = 200


def crowded(
    size: Shape = 128,
    pixel_size: float = 10.0,
    *,
    n_particles: int = 12,
    n_filaments: int = 3,
    vesicle: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A crowded cellular scene: ribosomes, a lipid vesicle and actin-like filaments.

    - Ribosomes: :func:`.ribosome_map` at ``pixel_size`` (resolution ``2 * pixel_size``),
      uniformly randomly rotated (trilinear ``grid_sample``) and placed at random sub-voxel
      positions, fully inside the volume where it fits.  A position is rejected when its
      particle's bounding sphere (radius where the map falls below 2 % of its maximum, about
      175 Å at 10 Å pixels) would overlap another particle, the membrane or a filament;
      after 200 tries the best candidate (largest clearance) is used, so overlaps only occur
      when the volume is too full.
    - Vesicle: a sphere of radius ``U(0.2, 0.3) * min(size)`` voxels, fully inside the volume,
      whose membrane is two head-group layers of density ``PROTEIN_LEVEL`` (0.5), 10 Å thick,
      centred 15 Å either side of the mid-plane (a bilayer about 4 nm thick).
    - Filaments: straight solid cylinders of 35 Å radius (actin-like, 7 nm across) and
      density ``PROTEIN_LEVEL``, along uniformly random directions through random points of
      the central half of the volume, crossing it.
    - Membrane and filaments are blurred by the ribosomes' Gaussian (std
      ``2 * pixel_size / (pi sqrt 2)``), so the whole scene has one resolution.  Objects are
      combined with a voxelwise maximum; the scene lies in ``[0, 1]``, 0 being solvent and 1
      the densest (RNA-rich) ribosome voxel.

    Parameters
    ----------
    size
        Edge length (cube) or ``(z, y, x)`` shape in voxels.
    pixel_size
        Voxel size in Å.
    n_particles, n_filaments
        Numbers of ribosomes and filaments (>= 0).
    vesicle
        Whether to add the vesicle.
    seed
        Seed of ``numpy.random.default_rng``.
    device
        Where to put the result.

    Returns
    -------
    torch.Tensor
        ``(z, y, x)`` float32.
    """
    shape = as_shape3(size)
    pixel_size = check_positive(pixel_size, "pixel_size")
    if int(n_particles) < 0 or int(n_filaments) < 0:
        raise InputError(
            f"n_particles and n_filaments must be >= 0, got {n_particles}, {n_filaments}"
        )
    rng = np.random.default_rng(seed)  # draws, in order: vesicle, filaments, ribosomes
    sigma_vox = MOLMAP_SIGMA_FACTOR * 2.0  # blur std in voxels (resolution = 2 pixels)
    scene = torch.zeros(shape, dtype=torch.float32)
    half_bilayer = (MEMBRANE_LEAFLET_OFFSET_A + MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
    obstacles = _Obstacles(half_bilayer, filament_radius=FILAMENT_RADIUS_A / pixel_size)
    if vesicle:
        obstacles.vesicle = _add_vesicle(scene, rng, pixel_size, sigma_vox, half_bilayer)
    for _ in range(int(n_filaments)):
        obstacles.filaments.append(_add_filament(scene, rng, obstacles.filament_radius, sigma_vox))
    if n_particles > 0:
        _add_ribosomes(scene, rng, int(n_particles), pixel_size, obstacles)
    return scene.to(device)


@dataclass
class _Obstacles:
    """What a ribosome must not overlap: the vesicle's membrane and the filaments (voxels)."""

    half_bilayer: float
    filament_radius: float
    vesicle: tuple[np.ndarray, float] | None = None  # centre (z, y, x), radius
    filaments: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # point, unit

    def clearance(self, p: np.ndarray, placed: list[np.ndarray], r_p: float) -> float:
        """Smallest gap between a particle of radius ``r_p`` at ``p`` and everything else."""
        gaps = [np.inf]
        gaps += [float(np.linalg.norm(p - q)) - 2 * r_p for q in placed]
        if self.vesicle is not None:
            centre, radius = self.vesicle
            gaps.append(abs(float(np.linalg.norm(p - centre)) - radius) - r_p - self.half_bilayer)
        for p0, u in self.filaments:
            v = p - p0
            gaps.append(float(np.linalg.norm(v - (v @ u) * u)) - r_p - self.filament_radius)
        return min(gaps)


def _axes(shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Voxel indices along z, y, x as float32."""
    return tuple(torch.arange(n, dtype=torch.float32) for n in shape)


def _add_vesicle(
    scene: torch.Tensor,
    rng: np.random.Generator,
    pixel_size: float,
    sigma_vox: float,
    half_bilayer: float,
) -> tuple[np.ndarray, float]:
    """Draw a vesicle fully inside ``scene``, max-combine its membrane; (centre, radius)."""
    shape = tuple(scene.shape)
    dims = np.asarray(shape, dtype=np.float64)
    ves_radius = rng.uniform(0.2, 0.3) * float(dims.min())
    pad = ves_radius + half_bilayer + 3 * sigma_vox
    lo, hi = np.full(3, pad), dims - 1 - pad
    ves_centre = np.where(hi > lo, rng.uniform(lo, np.maximum(hi, lo)), (dims - 1) / 2)
    a1 = (MEMBRANE_LEAFLET_OFFSET_A - MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
    a2 = (MEMBRANE_LEAFLET_OFFSET_A + MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
    c = [float(v) for v in ves_centre]
    z, y, x = _axes(shape)
    for z0 in range(shape[0]):  # slice by slice: no N^3 coordinate arrays
        r = torch.sqrt((z[z0] - c[0]) ** 2 + (y[:, None] - c[1]) ** 2 + (x[None, :] - c[2]) ** 2)
        d = (r - ves_radius).abs()
        prof = PROTEIN_LEVEL * _layer_profile(d, a1, a2, sigma_vox)
        prof = prof + PROTEIN_LEVEL * _layer_profile(-d, a1, a2, sigma_vox)  # mirror tail
        scene[z0] = torch.maximum(scene[z0], prof)
    return ves_centre, ves_radius


def _add_filament(
    scene: torch.Tensor, rng: np.random.Generator, r_fil: float, sigma_vox: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a straight filament through the central half, max-combine it; (point, direction)."""
    shape = tuple(scene.shape)
    dims = np.asarray(shape, dtype=np.float64)
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)  # direction (z, y, x)
    p0 = rng.uniform(0.25, 0.75, size=3) * (dims - 1)
    uz, uy, ux = (float(v) for v in u)
    z, y, x = _axes(shape)
    for z0 in range(shape[0]):
        dz, dy, dx = z[z0] - float(p0[0]), y[:, None] - float(p0[1]), x[None, :] - float(p0[2])
        along = dz * uz + dy * uy + dx * ux
        dist2 = dz**2 + dy**2 + dx**2 - along**2
        dist = torch.sqrt(torch.clamp(dist2, min=0.0))
        prof = PROTEIN_LEVEL * _layer_profile(dist, -r_fil, r_fil, sigma_vox)
        scene[z0] = torch.maximum(scene[z0], prof)
    return p0, u


def _add_ribosomes(
    scene: torch.Tensor,
    rng: np.random.Generator,
    n_particles: int,
    pixel_size: float,
    obstacles: _Obstacles,
) -> None:
    """Place ``n_particles`` randomly rotated ribosomes where they overlap nothing."""
    particle = torch.from_numpy(ribosome_density(pixel_size, None, 2.0 * pixel_size).copy())
    m = particle.shape[0]
    idx = torch.nonzero(particle > 0.02)
    r_p = float(torch.linalg.norm(idx.to(torch.float64) - m / 2.0, dim=1).max()) + 1.0
    dims = np.asarray(tuple(scene.shape), dtype=np.float64)
    lo = np.where(dims - 1 > 2 * r_p, r_p, 0.0)
    hi = np.where(dims - 1 > 2 * r_p, dims - 1 - r_p, dims - 1)
    placed: list[np.ndarray] = []
    for _ in range(n_particles):
        best = _place(rng, lo, hi, lambda p: obstacles.clearance(p, placed, r_p))
        placed.append(best)
        _paste_rotated(scene, particle, best, random_rotation(rng), r_p)


def _place(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    clearance: Callable[[np.ndarray], float],
) -> np.ndarray:
    """The first uniform draw in ``[lo, hi)`` with clearance >= 0, else the best one."""
    best, best_gap = None, -np.inf
    for _try in range(PLACEMENT_TRIES):
        cand = rng.uniform(lo, hi)
        gap = clearance(cand)
        if gap > best_gap:
            best, best_gap = cand, gap
        if gap >= 0:
            break
    if best is None:  # only when every clearance is NaN, which cannot happen
        best = rng.uniform(lo, hi)
    if best_gap < 0:
        logger.info("crowded: particle placed with overlap %.1f voxels", -best_gap)
    return best


def _paste_rotated(
    scene: torch.Tensor,
    particle: torch.Tensor,
    centre: np.ndarray,
    rot_zyx: np.ndarray,
    radius: float,
) -> None:
    """Max-combine ``particle`` rotated by ``rot_zyx`` about its centre ``m / 2`` into
    ``scene`` at the (sub-voxel) position ``centre`` (z, y, x), trilinear interpolation."""
    m = particle.shape[0]
    lo = np.maximum(np.floor(centre - radius - 1).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius + 2).astype(int), scene.shape)
    if np.any(hi <= lo):
        return
    axes = [torch.arange(lo[i], hi[i], dtype=torch.float64) - centre[i] for i in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (dz, dy, dx, 3) zyx
    rot_t = torch.as_tensor(rot_zyx, dtype=torch.float64)
    src = grid @ rot_t + m / 2.0  # rows: R^T q, world offset -> body, in source voxels
    norm = src / (m - 1) * 2.0 - 1.0  # align_corners=True
    norm = norm.flip(-1).to(torch.float32)[None]  # grid_sample wants (x, y, z)
    out = torch.nn.functional.grid_sample(
        particle[None, None], norm, mode="bilinear", padding_mode="zeros", align_corners=True
    )[0, 0]
    region = scene[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    torch.maximum(region, out, out=region)


def _layer_profile(d: torch.Tensor, a: float, b: float, sigma: float) -> torch.Tensor:
    """A box ``a <= d <= b`` blurred by a Gaussian of std ``sigma`` (all in the same units)."""
    s = math.sqrt(2.0) * sigma
    return 0.5 * (torch.erf((d - a) / s) - torch.erf((d - b) / s))
