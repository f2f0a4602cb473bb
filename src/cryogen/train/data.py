"""Training data (appendix A.7): subtomograms at random origins and a random crop per step.

From each input volume ``n_subtomos`` cubes of edge ``subtomo_size`` are cut at random
origins (with a mask: only origins whose cube has mask coverage >= ``mask_threshold``).
Every training step draws, for each batch element, one subtomogram and a random cubic crop
of edge ``crop_size`` inside it.  The crops are *not* rotated: the input's missing wedge
must keep its orientation (rotations are applied by the training step, to the generator's
output, and followed by ``T_M``).

The data are normalised to mean 0 and standard deviation 1 over all input volumes
(:class:`Normalisation`, stored in every checkpoint and used again by ``predict``).  All
random draws come from one ``numpy.random.Generator`` seeded from the config's seed; its
state is part of :meth:`SubtomoDataset.state_dict`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cryogen.corrupt import check_tilt_range
from cryogen.errors import InputError
from cryogen.model.normalisation import Normalisation, as_numpy, compute_normalisation

__all__ = ["SubtomoDataset", "sample_origins"]

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor


def _coverage_message(
    name: str, found: int, wanted: int, size: int, threshold: float, fraction: float
) -> str:
    """The one-line error for too few subtomograms with enough mask coverage."""
    return (
        f"{name}: found only {found} of the {wanted} subtomograms of {size}^3 voxels asked for "
        f"with mask coverage >= {threshold:.0%} (the mask covers {fraction:.1%} of the volume); "
        f"lower mask_threshold (to {threshold / 2:.2g}, say), ask for fewer or smaller "
        "subtomograms (n_subtomos, subtomo_size), or make a larger mask (make_mask with a "
        "higher density_percentage or std_percentage)"
    )


def sample_origins(
    shape: tuple[int, int, int],
    size: int,
    n: int,
    rng: np.random.Generator,
    *,
    mask: ArrayLike | None = None,
    threshold: float = 0.4,
    max_tries: int = 2000,
    name: str = "volume",
) -> list[tuple[int, int, int]]:
    """``n`` random origins of cubes of edge ``size`` inside a volume of ``shape``.

    With ``mask`` (same shape, nonzero = inside), a cube is accepted only when its mean of
    ``mask != 0`` is at least ``threshold``.  A volume no larger than ``size`` along every
    axis yields the single origin ``(0, 0, 0)``.

    Raises
    ------
    InputError
        When fewer than ``n`` acceptable cubes turn up in ``max_tries * n`` draws, or at once
        when the mask holds too few voxels for any cube to reach ``threshold``.  The message
        says how many were found, how many were asked for, and which options to change.
    """
    highs = [max(0, int(s) - size) for s in shape]
    m = None if mask is None else as_numpy(mask)
    if m is not None:
        inside = int(np.count_nonzero(m))
        voxels = min(size, int(shape[0])) * min(size, int(shape[1])) * min(size, int(shape[2]))
        if inside < threshold * voxels:  # no cube can reach the threshold: fail now
            raise InputError(_coverage_message(name, 0, n, size, threshold, inside / m.size))
    if all(h == 0 for h in highs):
        return [(0, 0, 0)]
    out: list[tuple[int, int, int]] = []
    tries = 0
    while len(out) < n:
        o = tuple(int(rng.integers(0, h + 1)) for h in highs)
        tries += 1
        if m is not None:
            cube = m[o[0] : o[0] + size, o[1] : o[1] + size, o[2] : o[2] + size]
            if float((cube != 0).mean()) < threshold:
                if tries > max_tries * n:
                    frac = float(np.count_nonzero(m)) / m.size
                    raise InputError(_coverage_message(name, len(out), n, size, threshold, frac))
                continue
        out.append(o)  # type: ignore[arg-type]
    return out


class SubtomoDataset:
    """Normalised subtomograms of the input volumes and a seeded crop sampler.

    Parameters
    ----------
    volumes
        Input volumes ``(z, y, x)`` (any sizes; each at least ``crop_size`` along every axis).
    subtomo_size, n_subtomos, crop_size
        Subtomogram edge, count per volume and crop edge, voxels.  Volumes smaller than
        ``subtomo_size`` along an axis use a smaller common edge (>= ``crop_size``).
    masks
        Optional masks, one per volume (``None`` entries allowed), same shapes.
    mask_threshold
        Least fraction of mask voxels in a subtomogram.
    normalisation
        Applied to every subtomogram; computed from ``volumes`` when ``None``.
    seed
        Seed of the numpy generator drawing the origins and then the crops.
    device
        Where the subtomograms are kept (``(N, S, S, S)`` float32).
    tilt_ranges
        Optional tilt range of each volume ``(tilt_min, tilt_max)``, degrees: a run over
        tomograms of different ranges gives every subtomogram its own wedge.
    halves
        Optional half-sets, one ``(half1, half2)`` pair per volume (the same specimen with
        independent noise, e.g. from the even and the odd frames), each of its volume's
        shape; the volume is then typically their mean.  Their subtomograms are cut at the
        same places and normalised like the volumes.

    Attributes
    ----------
    subtomos : torch.Tensor
        ``(N, S, S, S)`` normalised subtomograms.
    halves : torch.Tensor or None
        ``(2, N, S, S, S)`` normalised subtomograms of the two half-sets.
    origins : list of (volume index, z, y, x)
    whole_volumes : bool
        Every crop is a whole volume (every volume is ``crop_size^3``).
    """

    def __init__(
        self,
        volumes: Sequence[ArrayLike],
        *,
        subtomo_size: int,
        n_subtomos: int,
        crop_size: int,
        masks: Sequence[ArrayLike | None] | None = None,
        mask_threshold: float = 0.4,
        normalisation: Normalisation | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        halves: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
        tilt_ranges: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        if len(volumes) == 0:
            raise InputError("no training volumes given")
        _check_halves(volumes, halves)
        if tilt_ranges is not None and len(tilt_ranges) != len(volumes):
            raise InputError(f"{len(tilt_ranges)} tilt ranges given for {len(volumes)} volumes")
        self.tilt_ranges = (
            None if tilt_ranges is None else [(float(a), float(b)) for a, b in tilt_ranges]
        )
        for a, b in self.tilt_ranges or []:
            check_tilt_range(a, b)
        if masks is not None and len(masks) != len(volumes):
            raise InputError(f"{len(masks)} masks given for {len(volumes)} volumes")
        shapes = []
        for i, v in enumerate(volumes):
            shp = tuple(int(s) for s in v.shape)
            if len(shp) != 3:
                raise InputError(f"volume {i}: expected a 3D volume (z, y, x), got shape {shp}")
            if min(shp) < crop_size:
                raise InputError(
                    f"volume {i}: shape {shp} is smaller than the training crop {crop_size}^3; "
                    "use a smaller crop_size"
                )
            if masks is not None and masks[i] is not None:
                mshape = tuple(int(s) for s in masks[i].shape)  # type: ignore[union-attr]
                if mshape != shp:
                    raise InputError(f"mask {i}: shape {mshape} differs from its volume's {shp}")
            shapes.append(shp)
        size = min([subtomo_size] + [min(s) for s in shapes])
        if size < subtomo_size:
            logger.warning(
                "subtomograms of %d^3 (the smallest volume) instead of %d^3", size, subtomo_size
            )
        self.size = int(size)
        self.crop_size = int(crop_size)
        # every crop is a whole volume (the paper's whole-volume protocol)
        self.whole_volumes = all(shp == (self.crop_size,) * 3 for shp in shapes)
        self.normalisation = normalisation or compute_normalisation(volumes)
        self.rng = np.random.default_rng(seed)
        # which half is a sample's input: a stream of its own, so that a dataset with two
        # identical halves draws the very crops of one without half-sets
        self.half_rng = _half_rng(seed)
        self.origins: list[tuple[int, int, int, int]] = []
        cubes = []
        for i, v in enumerate(volumes):
            mask = None if masks is None else masks[i]
            for o in sample_origins(
                shapes[i],
                self.size,
                n_subtomos,
                self.rng,
                mask=mask,
                threshold=mask_threshold,
                name=f"volume {i}",
            ):
                cubes.append(_cube(v, o, size))
                self.origins.append((i, *o))
        subtomos = torch.stack(cubes)
        self.subtomos = self.normalisation.apply(subtomos).to(device)
        self.halves: torch.Tensor | None = None
        if halves is not None:
            cut = [
                torch.stack([_cube(halves[i][h], o, size) for i, *o in self.origins])
                for h in (0, 1)
            ]
            self.halves = self.normalisation.apply(torch.stack(cut)).to(device)

    def __len__(self) -> int:
        return int(self.subtomos.shape[0])

    def draw(self, batch_size: int) -> tuple[list[int], list[tuple[int, int, int]]]:
        """Draw ``batch_size`` (subtomogram index, crop offset) pairs."""
        hi = self.size - self.crop_size
        idx = [int(self.rng.integers(0, len(self))) for _ in range(batch_size)]
        offs = [tuple(int(self.rng.integers(0, hi + 1)) for _ in range(3)) for _ in idx]
        return idx, offs  # type: ignore[return-value]

    def subtomogram_tilt_ranges(self) -> list[tuple[float, float]] | None:
        """Each subtomogram's tilt range (its volume's), or None where not given."""
        if self.tilt_ranges is None:
            return None
        return [self.tilt_ranges[v] for v, *_ in self.origins]

    def draw_halves(self, batch_size: int) -> list[int]:
        """Which half-set each sample's input comes from (0 or 1; its target is the other);
        drawn only for a dataset with half-sets."""
        return [int(self.half_rng.integers(0, 2)) for _ in range(batch_size)]

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        """Start the crop sampler (and the half-set choice) from ``seed``: another DDP
        rank's own crops of the same subtomograms."""
        self.rng = np.random.default_rng(seed)
        self.half_rng = _half_rng(seed)

    def sampler_state(self) -> dict[str, Any]:
        """The states of the crop sampler and the half-set choice."""
        return {"crops": self.rng.bit_generator.state, "halves": self.half_rng.bit_generator.state}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`sampler_state` (a state without ``halves`` keeps that stream)."""
        self.rng.bit_generator.state = state["crops"]
        if "halves" in state:
            self.half_rng.bit_generator.state = state["halves"]

    def half_crops(
        self,
        source: torch.Tensor,
        halves: list[int],
        idx: list[int],
        offsets: list[tuple[int, int, int]],
    ) -> torch.Tensor:
        """Crops ``(B, 1, C, C, C)`` of ``source`` ``(2, N, S, S, S)``, sample ``b`` from
        half ``halves[b]``."""
        return torch.cat(
            [self.crop(source[h], [i], [o]) for h, i, o in zip(halves, idx, offsets, strict=True)]
        )

    def crop(
        self, source: torch.Tensor, idx: list[int], offsets: list[tuple[int, int, int]]
    ) -> torch.Tensor:
        """Crops ``(B, 1, C, C, C)`` of ``source`` ``(N, S, S, S)`` at the drawn places."""
        c = self.crop_size
        return torch.stack(
            [
                source[i, z : z + c, y : y + c, x : x + c]
                for i, (z, y, x) in zip(idx, offsets, strict=True)
            ]
        )[:, None]

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch of random crops ``(B, 1, C, C, C)`` of the normalised subtomograms."""
        idx, offs = self.draw(batch_size)
        return self.crop(self.subtomos, idx, offs)

    def state_dict(self) -> dict:
        return {
            "tilt_ranges": self.tilt_ranges,
            "halves": self.halves is not None,
            "half_rng": self.half_rng.bit_generator.state,
            "rng": self.rng.bit_generator.state,
            "origins": [list(o) for o in self.origins],
            "size": self.size,
            "crop_size": self.crop_size,
            "normalisation": self.normalisation.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the sampler's generator; the subtomograms must be the same ones."""
        if [list(o) for o in self.origins] != [list(o) for o in state["origins"]]:
            raise InputError(
                "the training data differ from the checkpoint's (other subtomogram origins): "
                "resume with the same volumes, seed and subtomogram settings"
            )
        if state.get("tilt_ranges") != self.tilt_ranges and "tilt_ranges" in state:
            raise InputError(
                f"the run was trained on tilt ranges {state['tilt_ranges']}, not "
                f"{self.tilt_ranges}: resume it with the same tomograms and ranges"
            )
        if bool(state.get("halves", False)) != (self.halves is not None):
            had = "with" if state.get("halves") else "without"
            raise InputError(
                f"the run was trained {had} half-sets: resume it {had} them (the same data)"
            )
        self.rng.bit_generator.state = state["rng"]
        if "half_rng" in state:
            self.half_rng.bit_generator.state = state["half_rng"]


def _cube(volume: ArrayLike, origin: Sequence[int], size: int) -> torch.Tensor:
    """The cube of edge ``size`` at ``origin`` of a volume, float32 in memory."""
    z, y, x = (int(v) for v in origin)
    a = as_numpy(volume)[z : z + size, y : y + size, x : x + size]
    return torch.as_tensor(np.array(a, dtype=np.float32))


def _check_halves(
    volumes: Sequence[ArrayLike], halves: Sequence[tuple[ArrayLike, ArrayLike]] | None
) -> None:
    """One pair of half-sets per volume, each of its volume's shape."""
    if halves is None:
        return
    if len(halves) != len(volumes):
        raise InputError(f"{len(halves)} half-set pairs given for {len(volumes)} volumes")
    for i, (v, pair) in enumerate(zip(volumes, halves, strict=True)):
        if len(pair) != 2:
            raise InputError(f"volume {i}: give its two half-sets, got {len(pair)}")
        want = tuple(int(n) for n in v.shape)
        for h, half in enumerate(pair, start=1):
            got = tuple(int(n) for n in half.shape)
            if got != want:
                raise InputError(f"volume {i}: half-set {h} has shape {got}, the volume {want}")


def _half_rng(seed: int | np.random.SeedSequence) -> np.random.Generator:
    """The half-set choice's stream: derived from the crop sampler's seed, independent of it."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.default_rng(ss.generate_state(4))
