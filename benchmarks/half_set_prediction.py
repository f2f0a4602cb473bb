"""How to predict noisy data with a model trained on half-sets: the mean, or each half?

For the runs of a ``cryogen benchmark CASE --halves`` folder, rebuild the case from the
folder's own settings (same phantom, noise and seed), then score against the truth (scale
fit on, mean over the volumes, as the benchmark scores):

* ``mean``: the prediction of the mean of the two halves (what the benchmark and
  ``cryogen predict`` do with the tomogram of the whole acquisition);
* ``halves``: the mean of the predictions of each half;
* ``mean + keep-measured``: ``mean`` with the measured Fourier components replaced by the
  input's (``--keep-measured``), which brings the input's noise back;
* the input (the mean of the halves) and the benchmark's best Gaussian blur, for scale.

Example::

    python benchmarks/half_set_prediction.py runs/sphere_snr02_halves
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from cryogen.benchmark import BenchmarkSettings
from cryogen.benchmark.baselines import best_gaussian_blur
from cryogen.metrics import apply_scale_fit, psnr, ssim_global
from cryogen.predict import PredictOptions, load_model, predict_volume


def scores(preds: list[np.ndarray], truths: list[np.ndarray]) -> str:
    """Mean scale-fitted PSNR / global SSIM over the volumes."""
    fitted = [apply_scale_fit(p, t) for p, t in zip(preds, truths, strict=True)]
    p = np.mean([psnr(f, t) for f, t in zip(fitted, truths, strict=True)])
    s = np.mean([ssim_global(f, t) for f, t in zip(fitted, truths, strict=True)])
    return f"{p:6.2f} / {s:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a cryogen benchmark folder made with --halves")
    ap.add_argument("--methods", nargs="+", default=["isonet", "cryogen"])
    args = ap.parse_args(argv)
    s = BenchmarkSettings.from_json(
        json.loads((args.folder / "results.json").read_text())["settings"]
    )
    case = s.build_case()
    if case.halves is None:
        ap.error(f"{args.folder}: not a benchmark with half-sets")
    truths = [t.numpy() for t in case.truth]
    sigma, blurred = best_gaussian_blur(case.corrupted, case.truth)
    print(f"{args.folder}: {case.description}")
    inputs = [c.numpy() for c in case.corrupted]
    print(f"  {'input (mean of the halves)':36s} {scores(inputs, truths)}")
    blur = [b.numpy() for b in blurred]
    print(f"  {f'best Gaussian blur (sigma {sigma:g})':36s} {scores(blur, truths)}")
    for method in args.methods:
        model = load_model(args.folder / "runs" / method, "cpu")
        roi = int(model.crop_size)
        opts = PredictOptions(tile=roi, overlap=min(16, roi // 4))
        mean = [predict_volume(model, c.numpy(), opts) for c in case.corrupted]
        halves = [
            0.5 * (predict_volume(model, a.numpy(), opts) + predict_volume(model, b.numpy(), opts))
            for a, b in case.halves
        ]
        kept = [
            predict_volume(model, c.numpy(), replace(opts, keep_measured=True))
            for c in case.corrupted
        ]
        print(f"  {method}, step {model.step}")
        print(f"    {'mean':34s} {scores(mean, truths)}")
        print(f"    {'halves, averaged':34s} {scores(halves, truths)}")
        print(f"    {'mean + keep-measured':34s} {scores(kept, truths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
