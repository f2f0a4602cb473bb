"""Bias check of the energy model: does E tell real data from a perfect generator's fakes?

E (the config's architecture, optimiser, loss and regularisers) is trained alone for
``--steps`` updates on real samples against fakes made as CryoGEN makes them from g's
estimate, with g replaced by the truth (a perfect generator) or by the identity (a
generator that fills nothing), then scored on ``--pairs`` fresh pairs
(:func:`cryogen.train.energy_check.energy_bias`).  An accuracy of 0.5 means E cannot tell.
The check passes for an operator when the truth's fakes reach at most 0.6 and the
identity's at least 0.75: E judges the fill, not the operator.

Data: ``sphere``, ten 96^3 subtomograms of the 140^3 sphere at random origins and random
64^3 crops (training's layout); ``prism``, the ten 96^3 prisms whole (the paper's
protocol: the crop is the volume, ``T_M`` exact), or ten per set with ``--prism-sets N``
(more real volumes: E can no longer learn them by heart).  ``--crop`` changes the crop
edge.
``--snr X``: the sphere with noise at that SNR as two half-sets (the real samples are
crops of the first half; ``--set fake_noise='"halves"'`` gives the fakes the half-sets'
noise).
Operators: ``hard`` (``T_M`` on the crop), ``tapered`` (``crop_operator="tapered"``),
``subtomogram`` (``adv_wedge="subtomogram"``).

Examples::

    python benchmarks/energy_bias.py --phantom sphere prism --steps 1200
    python benchmarks/energy_bias.py --phantom sphere --operator tapered \
        --set energy_arch='"local"' --set energy_norm='"instance"'
    python benchmarks/energy_bias.py --phantom sphere --operator tapered --snr 0.2 \
        --set fake_noise='"halves"'
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cryogen.benchmark import build_case, case_train_settings
from cryogen.cli.options import parse_set_options
from cryogen.model import compute_normalisation
from cryogen.train import TrainConfig
from cryogen.train.energy_check import energy_bias

OPERATORS = {
    "hard": {"crop_operator": "hard", "adv_wedge": "crop"},
    "tapered": {"crop_operator": "tapered", "adv_wedge": "crop"},
    "subtomogram": {"crop_operator": "hard", "adv_wedge": "subtomogram"},
}


Volumes = list[torch.Tensor]


def subtomograms(
    name: str, seed: int, crop: int | None, prism_sets: int = 1, snr: float | None = None
) -> tuple[Volumes, Volumes, Volumes | None, int]:
    """Clean and measured subtomograms, normalised like training data, the second
    half-sets (with ``snr``; the measured ones are then the first) and the crop edge: the
    sphere's ten random 96^3 subtomograms (crops 64), or the ten prisms whole (ten per
    prism set, the sets of seeds ``seed ... seed + prism_sets - 1``)."""
    halves = snr is not None
    if name == "prism":
        clean, measured, others = [], [], []
        for s in range(seed, seed + prism_sets):
            case = build_case(name, seed=s, snr=snr, halves=halves)
            norm = compute_normalisation(case.corrupted)
            clean += [norm.apply(v.float()) for v in case.truth]
            if case.halves is None:
                measured += [norm.apply(v.float()) for v in case.corrupted]
            else:
                measured += [norm.apply(a.float()) for a, _ in case.halves]
                others += [norm.apply(b.float()) for _, b in case.halves]
        return clean, measured, others or None, crop or int(clean[0].shape[0])
    case = build_case(name, seed=seed, snr=snr, halves=halves)
    norm = compute_normalisation(case.corrupted)
    first, second = case.halves[0] if case.halves else (case.corrupted[0], None)
    clean, measured = norm.apply(case.truth[0].float()), norm.apply(first.float())
    other = None if second is None else norm.apply(second.float())
    layout = case_train_settings("sphere", int(clean.shape[0]))
    size, rng = layout["subtomo_size"], np.random.default_rng(seed)
    xs, ys, zs = [], [], []
    for _ in range(10):
        o = [int(rng.integers(0, s - size + 1)) for s in clean.shape]
        sl = tuple(slice(a, a + size) for a in o)
        xs.append(clean[sl])
        ys.append(measured[sl])
        if other is not None:
            zs.append(other[sl])
    return xs, ys, zs or None, crop or layout["crop_size"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", nargs="+", choices=["sphere", "prism"], default=["sphere"])
    ap.add_argument("--operator", nargs="+", choices=list(OPERATORS), default=["hard", "tapered"])
    ap.add_argument(
        "--fakes", nargs="+", choices=["truth", "identity"], default=["truth", "identity"]
    )
    ap.add_argument("--steps", type=int, default=1200, help="E updates before scoring")
    ap.add_argument("--pairs", type=int, default=200, help="fresh pairs scored")
    ap.add_argument("--crop", type=int, default=None, help="crop edge (default: see above)")
    ap.add_argument(
        "--prism-sets",
        type=int,
        default=1,
        help="prism: this many prism sets of ten (seeds --seed, --seed + 1, ...)",
    )
    ap.add_argument("--snr", type=float, default=None, help="noise at this SNR, as two half-sets")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sets = parse_set_options(args.sets)
    head = ("phantom", "operator", "fakes", "accuracy", "real", "fake", "min")
    print("{:8} {:12} {:9} {:>8} {:>7} {:>7} {:>5}".format(*head))
    for name in args.phantom:
        xs, ys, zs, crop = subtomograms(name, args.seed, args.crop, args.prism_sets, args.snr)
        size = {"subtomo_size": int(ys[0].shape[0]), "crop_size": crop}
        for op in args.operator:
            cfg = TrainConfig.from_sources(args.preset, None, size, exact={**OPERATORS[op], **sets})
            acc = {}
            for fakes in args.fakes:
                t0 = time.perf_counter()
                r = energy_bias(
                    cfg,
                    xs,
                    ys,
                    fakes,
                    steps=args.steps,
                    pairs=args.pairs,
                    seed=args.seed,
                    others=zs,
                )
                acc[fakes] = r.accuracy
                minutes = (time.perf_counter() - t0) / 60
                print(
                    f"{name:8} {op:12} {fakes:9} {r.accuracy:8.3f} {r.score_real:7.2f} "
                    f"{r.score_fake:7.2f} {minutes:5.1f}",
                    flush=True,
                )
            if len(acc) == 2:
                ok = acc["truth"] <= 0.6 and acc["identity"] >= 0.75
                print(f"{name:8} {op:12} bias check {'passes' if ok else 'fails'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
