"""Where the error of a noisy benchmark's result lies: the measured region or the wedge.

For each volume of a ``cryogen benchmark CASE --snr X --halves`` folder (``volumes/``:
``truth``, ``corrupted``, ``blur`` and each method's prediction), after the benchmark's
least-squares scale fit to the truth, print:

* the PSNR as scored;
* the PSNR with the measured Fourier region replaced by the truth's: what the result would
  score with perfect denoising of what was measured, so how well it **fills the wedge**;
* the PSNR with the missing wedge replaced by the truth's: what it would score with a
  perfect fill, so how well it **denoises the measured region**;
* the PSNR after the best of a few small Gaussian blurs of the result (chosen with the
  truth, like the benchmark's blur row): how much noise the result still carries.

The input and the benchmark's best blur fill nothing, so their first oracle column is the
same: it is the floor of a result that leaves the wedge empty.

Example::

    python benchmarks/noisy_error_split.py runs/h_sph02_15/seed_0 runs/h_sph02_15/seed_1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from cryogen.io import read_volume
from cryogen.metrics import apply_scale_fit, psnr
from cryogen.wedge import missing_wedge_mask

ROWS = ("corrupted", "blur", "isonet", "cryogen")
POST_BLURS = (0.5, 0.75, 1.0, 1.25)


def swap_regions(keep: np.ndarray, fill: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``keep``'s measured Fourier region with ``fill``'s missing wedge (rfft layout)."""
    f = np.fft.rfftn(keep) * measured + np.fft.rfftn(fill) * (1.0 - measured)
    return np.fft.irfftn(f, s=keep.shape, axes=(0, 1, 2))


def split(folder: Path) -> list[str]:
    """One line per row of ``folder``'s benchmark."""
    res = json.loads((folder / "results.json").read_text())
    tilt = (res["settings"]["tilt_min"], res["settings"]["tilt_max"])
    vol = folder / "volumes"
    truth = np.asarray(read_volume(vol / "truth.mrc").load(), dtype=np.float64)
    measured = missing_wedge_mask(truth.shape, *tilt).numpy().astype(np.float64)
    lines = []
    for name in ROWS:
        if not (vol / f"{name}.mrc").is_file():
            continue
        pred = np.asarray(read_volume(vol / f"{name}.mrc").load(), dtype=np.float64)
        fitted = apply_scale_fit(pred, truth)
        blurred = max(
            psnr(apply_scale_fit(gaussian_filter(pred, s), truth), truth) for s in POST_BLURS
        )
        lines.append(
            f"{folder.name:>8s} {name:>9s} {psnr(fitted, truth):7.2f} "
            f"{psnr(swap_regions(truth, fitted, measured), truth):10.2f} "
            f"{psnr(swap_regions(fitted, truth, measured), truth):10.2f} {blurred:10.2f}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="+", help="cryogen benchmark output folders")
    args = ap.parse_args()
    head = [
        ("folder", "", ""),
        ("row", "", ""),
        ("PSNR", "", ""),
        ("fill only", "(truth in", "measured)"),
        ("denoise", "(truth in", "wedge)"),
        ("+ blur", "(best of", "0.5-1.25)"),
    ]
    widths = (8, 9, 7, 10, 10, 10)
    for k in range(3):
        print(" ".join(f"{h[k]:>{w}s}" for h, w in zip(head, widths, strict=True)))
    for folder in args.folders:
        for line in split(folder):
            print(line, flush=True)


if __name__ == "__main__":
    main()
