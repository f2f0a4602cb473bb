"""Seconds per training step of each method, whole training step (refills included).

The 15-minute comparisons give each method the same wall-clock budget, so a method that
costs more per step trains fewer steps.  This script runs short trainings of each variant
on the same phantom data, alternating variants round by round so that load from other
jobs hits them alike, and reads each step's duration from ``losses.csv`` (training time
only, no start-up).  It reports the median seconds per step of each variant, split into
the steps before and after the energy term starts (``adv_start``), and the ratio to the
first variant.

Example (one thread on one core, as the cpu preset trains)::

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/method_step_time.py --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from train_quality import phantom_data  # benchmarks/ is on sys.path when run as a script

from cryogen.train import TrainConfig, train

VARIANTS: dict[str, dict[str, object]] = {
    "isonet": {"method": "isonet"},
    "cryogen, E off": {"method": "cryogen", "adv_weight": 0.0},
    "cryogen (defaults)": {"method": "cryogen"},
    "cryogen, d_start 0.2": {"method": "cryogen", "d_start": 0.2},
}


def step_times(run_dir: Path) -> list[tuple[float, float, bool]]:
    """(progress, seconds, E learned) of every step after the first of a run."""
    with open(run_dir / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        e_learned = b.get("d_loss", "") not in ("", "nan")
        out.append((float(b["progress"]), float(b["elapsed_s"]) - float(a["elapsed_s"]), e_learned))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="steps per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per variant, interleaved")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    _, volumes = phantom_data("prism", -60.0, 60.0, 0)
    times: dict[str, dict[str, list[float]]] = {
        v: {"before": [], "after": []} for v in args.variants
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in args.variants:
                cfg = TrainConfig.from_sources(
                    "cpu",
                    overrides={**VARIANTS[name], "steps": args.steps, "seed": r},
                    exact={"minutes": None, "checkpoint_minutes": None},
                )
                run = Path(tmp) / f"{r}_{name}"
                train(cfg, volumes, run, progress=False)
                for p, dt, _ in step_times(run):
                    times[name]["before" if p <= cfg.adv_start else "after"].append(dt)
                print(f"round {r + 1}/{args.rounds}: {name} done", flush=True)
    print(f"\n{args.steps} steps per run, {args.rounds} runs per variant (prism set, 64^3 crops)")
    print("| variant | median s/step before adv_start | after | ratio to first (after) |")
    print("|---|---|---|---|")
    first = None
    for name in args.variants:
        before = statistics.median(times[name]["before"])
        after = statistics.median(times[name]["after"])
        first = first or after
        print(f"| {name} | {before:.3f} | {after:.3f} | {after / first:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
