"""How to predict noisy data with a model trained on half-sets: the mean, or each half?

For the runs of a ``cryogen benchmark CASE --halves`` folder, rebuild the case from the
folder's own settings (same phantom, noise and seed), then score against the truth (scale
fit on, mean over the volumes, as the benchmark scores):

* ``mean``: the prediction of the mean of the two halves (what the benchmark and
  ``cryogen predict`` do with the tomogram of the whole acquisition);
* ``halves``: the mean of the predictions of each half;
* ``mean + keep-measured``: ``mean`` with the measured Fourier components replaced by the
  input's (what ``--keep-measured`` would do; ``cryogen predict`` refuses it for a model
  trained on half-sets), which brings the input's noise back;
* ``mean + blur from the half-sets``: ``mean`` blurred by the width the half-sets choose
  (``cryogen predict --blur auto``: each half's prediction against the other half where
  it was measured; no truth used);
* ``mean + best blur``: ``mean`` blurred by the width of the highest PSNR against the
  truth (an upper bound for the one above);
* the input (the mean of the halves) and the benchmark's best Gaussian blur, for scale.

A folder of runs made outside ``cryogen benchmark`` (``RUN/runs/METHOD``) is read with the
case given: ``--case sphere --snr 0.2 --seed 1``.

Examples::

    python benchmarks/half_set_prediction.py runs/sphere_snr02_halves
    python benchmarks/half_set_prediction.py runs/long_iso --case sphere --snr 0.2 --seed 1 \
        --methods isonet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cryogen.benchmark import BenchmarkSettings
from cryogen.benchmark.baselines import best_gaussian_blur
from cryogen.benchmark.job import blur_from_halves, prediction_options
from cryogen.metrics import apply_scale_fit, psnr, ssim_global
from cryogen.predict import keep_measured_fourier, load_model, predict_volume
from cryogen.predict.blur import blurred
from cryogen.predict.half_blur import BLUR_SIGMAS


def blurred_all(preds: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    return [blurred(p, sigma) for p in preds]


def mean_psnr(preds: list[np.ndarray], truths: list[np.ndarray]) -> float:
    return float(
        np.mean([psnr(apply_scale_fit(p, t), t) for p, t in zip(preds, truths, strict=True)])
    )


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
    ap.add_argument("--case", help="the case, for a folder without results.json")
    ap.add_argument("--snr", type=float)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    saved = args.folder / "results.json"
    if saved.is_file():
        s = BenchmarkSettings.from_json(json.loads(saved.read_text())["settings"])
    elif args.case:
        s = BenchmarkSettings(args.case, snr=args.snr, halves=True, seed=args.seed)
    else:
        ap.error(f"{args.folder} has no results.json: give --case (and --snr, --seed)")
    case = s.build_case()
    if case.halves is None:
        ap.error(f"{args.folder}: not a benchmark with half-sets")
    truths = [t.numpy() for t in case.truth]
    sigma, input_blurred = best_gaussian_blur(case.corrupted, case.truth)
    print(f"{args.folder}: {case.description}")
    inputs = [c.numpy() for c in case.corrupted]
    print(f"  {'input (mean of the halves)':42s} {scores(inputs, truths)}")
    blur = [b.numpy() for b in input_blurred]
    print(f"  {f'best Gaussian blur (sigma {sigma:g})':42s} {scores(blur, truths)}")
    pairs = [(a.numpy(), b.numpy()) for a, b in case.halves]
    for method in args.methods:
        model = load_model(args.folder / "runs" / method, "cpu")
        opts = prediction_options(model)
        mean = [predict_volume(model, c, opts) for c in inputs]
        halves = [
            0.5 * (predict_volume(model, a, opts) + predict_volume(model, b, opts))
            for a, b in pairs
        ]
        kept = [m.copy() for m in mean]
        for k, c in zip(kept, inputs, strict=True):
            keep_measured_fourier(c, k, s.tilt_min, s.tilt_max)
        chosen, widths = blur_from_halves(model, mean, pairs)
        best = max(BLUR_SIGMAS, key=lambda w: mean_psnr(blurred_all(mean, w), truths))
        print(f"  {method}, step {model.step}")
        print(f"    {'mean':40s} {scores(mean, truths)}")
        print(f"    {'halves, averaged':40s} {scores(halves, truths)}")
        print(f"    {'mean + keep-measured':40s} {scores(kept, truths)}")
        label = f"mean + blur from the half-sets ({', '.join(f'{w:g}' for w in widths)})"
        print(f"    {label:40s} {scores(chosen, truths)}")
        label = f"mean + best blur ({best:g})"
        print(f"    {label:40s} {scores(blurred_all(mean, best), truths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
