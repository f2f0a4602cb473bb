"""What test-time augmentation (``cryogen predict --tta``) gains on finished training runs.

Each run of ``benchmarks/train_quality.py`` (or ``cryogen train`` on the same phantom) is
scored on its phantom twice, as ``train_quality.py`` scores it: plain (one pass per 64^3
tile, overlap 16) and with ``tta=True`` (each tile's prediction averaged over the cube
rotations that keep the wedge: 4 for +-60 deg).  ``--reflections`` adds, for comparison,
the mean over all eight axis flips (mirror images included), which ``--tta`` does not use:
mirroring changes the hand of chiral structures.

Example::

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/tta_gain.py --phantom prism \\
        runs/Z_prism_iso_3000 runs/Z_prism_cg_3000

Output: one line per run and mode with PSNR / global SSIM (scale fit on, mean over the
volumes), the per-volume PSNR, and the prediction time relative to the plain pass.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from train_quality import phantom_data, score  # benchmarks/ is on sys.path as a script

from cryogen.predict import PredictOptions, load_model, predict_volume

#: How ``train_quality.py`` predicts: 64^3 tiles, overlap 16.
PLAIN = PredictOptions(tile=64, overlap=16)


def predict_flips(model, y: np.ndarray) -> np.ndarray:
    """Mean over the eight axis flips of ``flip^-1 g(flip y)`` (symmetric tilt ranges only)."""
    acc = np.zeros_like(y, dtype=np.float64)
    flips = [d for r in range(4) for d in itertools.combinations((0, 1, 2), r)]
    for d in flips:
        yy = np.ascontiguousarray(np.flip(y, d)) if d else y
        p = predict_volume(model, yy, PLAIN)
        acc += np.flip(p, d) if d else p
    return (acc / len(flips)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--phantom", choices=["sphere", "prism"], required=True)
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed (the prism set)")
    ap.add_argument("--reflections", action="store_true", help="also the eight-flip mean")
    args = ap.parse_args(argv)

    modes = {
        "plain": lambda m, y: predict_volume(m, y, PLAIN),
        "tta": lambda m, y: predict_volume(m, y, replace(PLAIN, tta=True)),
    }
    if args.reflections:
        modes["flips8"] = predict_flips
    for run in args.runs:
        model = load_model(run, "cpu")
        clean, corrupted = phantom_data(args.phantom, model.tilt_min, model.tilt_max, args.seed)
        base = None
        for name, fn in modes.items():
            spent = [0.0]

            def timed(m, y, fn=fn, spent=spent):
                t0 = time.perf_counter()
                out = fn(m, y)
                spent[0] += time.perf_counter() - t0
                return out

            p, s, each = score(model, clean, corrupted, 64, predict=timed)
            secs = spent[0]
            base = base or secs
            print(
                f"{run}  {name:6s}  {p:.2f} dB / {s:.4f}  time x{secs / base:.1f}  "
                f"[{' '.join(f'{v:.2f}' for v in each)}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
