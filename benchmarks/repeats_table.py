"""One markdown table over several repeated benchmarks (``cryogen benchmark --repeats N``).

Each row is one folder's ``results.json``: the medians [min, max] of both methods' PSNR,
their median global SSIM, the median paired difference CryoGEN - IsoNet-style with the
number of seeds CryoGEN is ahead on, median steps, time to quality per seed, and the
stability criterion (the largest PSNR drop of a checkpoint after 2 minutes below the best one
before it, worst seed; folders summarised before it was reported are summarised again from
their seed folders).

Example::

    python benchmarks/repeats_table.py runs/R7_asym runs/R7_ribosome runs/R7_crowded
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryogen.benchmark import (
    METHODS,
    REPEATS_FORMAT,
    BenchmarkResults,
    RepeatResults,
    StabilityStat,
    summarise_repeats,
)


def row(folder: Path) -> str:
    data = json.loads((folder / "results.json").read_text())
    if data.get("format") != REPEATS_FORMAT:
        raise SystemExit(f"{folder}: not a repeated benchmark (cryogen benchmark --repeats N)")
    res = RepeatResults.from_json(data)
    s = res.summary
    if s is None:
        return f"| {folder.name} | no seed finished | | | | | | | |"
    if not s.stability:  # summarised before the criterion was: again from the seeds
        runs = [json.loads((folder / r.dir / "results.json").read_text()) for r in res.runs]
        s = summarise_repeats(
            [BenchmarkResults.from_json(r) for r in runs if r.get("status") == "complete"]
        )

    def psnr(m: str) -> str:
        med, lo, hi = (st[m]["psnr"] for st in (s.median, s.minimum, s.maximum))
        return f"{med:.2f} [{lo:.2f}, {hi:.2f}] / {s.median[m]['ssim_global']:.4f}"

    p, q = s.paired["psnr"], s.paired["ssim_global"]
    t = s.time_to_quality
    fractions = ", ".join("-" if f is None else f"{f:.2f}" for f in t.fractions)
    seeds = f"{len(s.seeds)}" + ("" if res.status == "complete" else " (running)")
    return (
        f"| {folder.name} | {seeds} | {psnr('isonet')} | {psnr('cryogen')} | "
        f"{p.median:+.2f} ({p.ahead} of {p.n}) | "
        f"{q.median:+.4f} ({q.ahead} of {q.n}) | "
        f"{s.median['isonet']['steps']:.0f} / {s.median['cryogen']['steps']:.0f} | "
        f"{t.reached} of {t.n} ({fractions}) | "
        + " / ".join(drop(s.stability[m]) for m in METHODS)
        + " |"
    )


def drop(st: StabilityStat) -> str:
    return "n/a" if st.max_drop is None else f"{st.max_drop:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args(argv)
    print(
        "| run | seeds | IsoNet-style PSNR median [min, max] / SSIM | CryoGEN PSNR median "
        "[min, max] / SSIM | CryoGEN - IsoNet-style PSNR, median (ahead) | same, global SSIM | "
        "steps (medians) | time to quality reached (per seed) | largest drop after 2 min, "
        "worst seed (IsoNet-style / CryoGEN, dB) |"
    )
    print("|---" * 9 + "|")
    for f in args.folders:
        print(row(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
