"""How far the crop-level data term is from zero at the true volume.

CryoGEN's data term compares ``T_M g(.)`` with ``T_M y`` on a training crop.  ``T_M`` on a
crop is not the wedge of the whole volume: cropping spreads the missing-wedge content of
the truth into the measured band, so even the exact answer ``x`` leaves
``mean((T_M(crop x - crop y))^2) > 0``, and the term pulls the generator away from it.
This script measures that floor on the benchmark phantoms, in the units training works
in (the corrupted data normalised to mean 0, std 1), next to the missing-wedge energy of
the crop itself (``mean((crop x - crop y)^2)``, the error of the corrupted input) and the
same floor with ``data_margin`` voxels cut from each face.  ``--taper T`` multiplies the
crop by a cosine taper ``T`` voxels wide at every face before ``T_M`` (a smooth window
instead of the crop's hard edges), to see whether the floor comes from the edges;
``--guard G`` drops the measured frequencies within ``G`` Fourier pixels of the missing
wedge (:func:`cryogen.wedge.guarded_wedge_mask`; with ``--taper`` this is
``crop_operator="tapered"``, :mod:`cryogen.train.methods.operators`);
``--highpass K`` keeps only spatial frequencies ``|k| >= K`` (cycles per voxel) in both the
floor and the signal, to see whether it comes from low frequencies.

Example::

    python benchmarks/data_term_bias.py --phantom sphere prism --crop 64 --crops 200
    python benchmarks/data_term_bias.py --phantom sphere prism --taper 16 --guard 3
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from train_quality import phantom_data  # benchmarks/ is on sys.path when run as a script

from cryogen.model import compute_normalisation
from cryogen.train.methods.operators import taper_window
from cryogen.wedge import guarded_wedge_mask, wedge_operator


def crop_floor(
    clean: list[torch.Tensor],
    corrupted: list[torch.Tensor],
    crop: int,
    n: int,
    margins: tuple[int, ...],
    tilt_min: float,
    tilt_max: float,
    seed: int,
    taper: int = 0,
    highpass: float = 0.0,
    guard: float = 0.0,
) -> dict[str, float]:
    """Mean over ``n`` random crops of the data term at the truth (per margin) and of the
    crop's missing-wedge energy (``corrupted``: ``clean`` with the tilt range's wedge)."""
    norm = compute_normalisation(corrupted)
    mask = guarded_wedge_mask((crop, crop, crop), tilt_min, tilt_max, guard)
    if highpass > 0:
        f, fr = torch.fft.fftfreq(crop), torch.fft.rfftfreq(crop)
        kz, ky, kx = torch.meshgrid(f, f, fr, indexing="ij")
        mask = mask * ((kz**2 + ky**2 + kx**2).sqrt() >= highpass).to(mask.dtype)
    window = taper_window(crop, taper)
    rng = np.random.default_rng(seed)
    floors: dict[int, list[float]] = {m: [] for m in margins}
    energy: list[float] = []
    signal: list[float] = []
    for _ in range(n):
        i = int(rng.integers(len(clean)))
        x, y = norm.apply(clean[i].float()), norm.apply(corrupted[i].float())
        o = [int(rng.integers(0, s - crop + 1)) for s in x.shape]
        sl = tuple(slice(a, a + crop) for a in o)
        diff = x[sl] - y[sl]
        energy.append(float(diff.pow(2).mean()))
        d = wedge_operator((window * diff)[None, None], mask)[0, 0]
        for m in margins:
            inner = d[m : crop - m, m : crop - m, m : crop - m] if m else d
            floors[m].append(float(inner.pow(2).mean()))
        signal.append(float(wedge_operator((window * y[sl])[None, None], mask).pow(2).mean()))
    out = {f"floor_margin{m}": float(np.mean(v)) for m, v in floors.items()}
    out["wedge_energy"] = float(np.mean(energy))
    # the floor as a fraction of what the term compares (T_M of the windowed data): a
    # window shrinks both, so only this ratio says whether it removes the floor
    out["floor/signal"] = out[f"floor_margin{margins[0]}"] / float(np.mean(signal))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", nargs="+", choices=["sphere", "prism"], default=["sphere"])
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--crops", type=int, default=200, help="random crops averaged")
    ap.add_argument("--margins", type=int, nargs="+", default=[0, 4, 8])
    ap.add_argument("--tilt-min", type=float, default=-60.0)
    ap.add_argument("--tilt-max", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--taper", type=int, default=0, help="cosine taper width at each face")
    ap.add_argument("--highpass", type=float, default=0.0, help="keep |k| >= this only")
    ap.add_argument(
        "--guard", type=float, default=0.0, help="guard band along the wedge, Fourier pixels"
    )
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    cols = [f"floor_margin{m}" for m in args.margins] + ["wedge_energy", "floor/signal"]
    print(f"{'phantom':8} " + " ".join(f"{c:>15}" for c in cols))
    for name in args.phantom:
        clean, corrupted = phantom_data(name, args.tilt_min, args.tilt_max, args.seed)
        r = crop_floor(
            [torch.from_numpy(v) for v in clean],
            [torch.from_numpy(v) for v in corrupted],
            args.crop,
            args.crops,
            tuple(args.margins),
            args.tilt_min,
            args.tilt_max,
            args.seed,
            args.taper,
            args.highpass,
            args.guard,
        )
        print(f"{name:8} " + " ".join(f"{r[c]:15.4f}" for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
