"""Quality of training runs on the paper's phantoms, checkpoint by checkpoint.

Trains one method on the sphere (appendix A.7.1: 140^3, ten 96^3 subtomograms, 64^3 crops)
or the prism set (A.7.2: ten randomly rotated 96^3 prisms, fed whole), then predicts the
corrupted phantom(s) with every saved generator snapshot and scores PSNR and global SSIM
after a least-squares scale fit against the clean phantom (``cryogen.metrics``).

Examples::

    python benchmarks/train_quality.py --phantom sphere --method cryogen --minutes 15 \
        --out runs/sphere_cryogen
    python benchmarks/train_quality.py --phantom sphere --method isonet --minutes 4 \
        --out runs/iso --set rounds=6

The table (and ``quality.json`` in the run folder) lists step, training minutes, PSNR and
SSIM of every snapshot.  ``--tile 0`` predicts each volume in one piece (faster on a CPU);
the default tiles like ``cryogen predict``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cryogen.benchmark import build_case
from cryogen.cli.options import parse_set_options
from cryogen.metrics import apply_scale_fit, psnr, ssim_global
from cryogen.predict import PredictOptions, load_model, predict_volume
from cryogen.train import TrainConfig, train


def phantom_data(name: str, tilt_min: float, tilt_max: float, seed: int):
    """Clean and wedge-corrupted volumes of a benchmark case at its paper size, as arrays."""
    if name not in ("sphere", "prism"):
        raise SystemExit(f"unknown phantom {name}")
    case = build_case(name, seed=seed, tilt_min=tilt_min, tilt_max=tilt_max)
    return [c.numpy() for c in case.truth], [c.numpy() for c in case.corrupted]


def score(model, clean, corrupted, tile, keep_measured=False, predict=None):
    """Mean PSNR, mean global SSIM and per-volume PSNR after the scale fit; ``predict``
    (``predict(model, y)``) replaces the tiled prediction."""
    ps, ss = [], []
    for c, y in zip(clean, corrupted, strict=True):
        if predict is not None:
            pred = predict(model, y)
        elif tile == 0:
            t = int(-(-max(y.shape) // 8) * 8)  # one tile covering the volume
            pred = predict_volume(
                model, y, PredictOptions(tile=t, overlap=0, keep_measured=keep_measured)
            )
        else:
            pred = predict_volume(
                model, y, PredictOptions(tile=tile, overlap=16, keep_measured=keep_measured)
            )
        fit = apply_scale_fit(pred, c)
        ps.append(psnr(fit, c))
        ss.append(ssim_global(fit, c))
    return float(np.mean(ps)), float(np.mean(ss)), [round(float(v), 2) for v in ps]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", choices=["sphere", "prism"], default="sphere")
    ap.add_argument("--method", choices=["cryogen", "isonet"], default="cryogen")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--tile", type=int, default=64, help="0: whole volume in one tile")
    ap.add_argument("--every", type=int, default=1, help="score every k-th snapshot")
    ap.add_argument("--keep-measured", action="store_true")
    ap.add_argument("--eval-only", action="store_true", help="score an existing run")
    args = ap.parse_args(argv)

    overrides = {
        "method": args.method,
        "seed": args.seed,
        "steps": args.steps,
        "minutes": args.minutes,
    }
    cfg = TrainConfig.from_sources(args.preset, None, overrides, exact=parse_set_options(args.sets))
    clean, corrupted = phantom_data(args.phantom, cfg.tilt_min, cfg.tilt_max, args.seed)
    if args.phantom == "prism":
        cfg = TrainConfig.validated({**cfg.model_dump(), "subtomo_size": 96, "n_subtomos": 1})
    if not args.eval_only:
        t0 = time.perf_counter()
        res = train(cfg, corrupted, args.out, overwrite=True, progress=sys.stderr.isatty())
        print(f"trained {res.step} steps in {(time.perf_counter() - t0) / 60:.2f} min", flush=True)
    snaps = sorted((args.out / "checkpoints").glob("step_*.pt"))
    snaps = snaps[::-1][:: args.every][::-1]
    rows = []
    print(f"{'step':>7} {'min':>6} {'psnr':>7} {'ssim':>7}", flush=True)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    for snap in snaps:
        model = load_model(snap, "cpu")
        p, s, each = score(model, clean, corrupted, args.tile, args.keep_measured)
        state_min = torch.load(snap, weights_only=True)["elapsed_s"] / 60.0
        rows.append(
            {
                "step": model.step,
                "minutes": state_min,
                "psnr": p,
                "ssim_global": s,
                "psnr_each": each,
            }
        )
        line = f"{model.step:7d} {state_min:6.2f} {p:7.2f} {s:7.4f}"
        print(line + (f"  per volume {each}" if len(each) > 1 else ""), flush=True)
    (args.out / "quality.json").write_text(
        json.dumps(
            {
                "phantom": args.phantom,
                "config": cfg.model_dump(mode="json"),
                "tile": args.tile,
                "keep_measured": args.keep_measured,
                "rows": rows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
