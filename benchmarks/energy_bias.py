"""Can the energy model tell real crops from fakes made of the *true* volume?

If it can, the adversarial term pushes even a perfect generator away from the truth.  E
(the cpu preset's architecture, optimiser and BCE loss) is trained alone on real samples
against fakes built from the clean phantom exactly as training builds them from g's
estimate (``adv_wedge``), then scored on fresh pairs:

* ``crop`` (the paper's): real ``T_M(crop y)``, fake ``T_M(R crop x)``, ``T_M`` on the crop;
* ``subtomogram``: real ``crop(T_M y_s)``, fake ``crop(T_M(R x_s))``, ``T_M`` on the whole
  96^3 subtomogram ``s`` and the crop cut where ``R`` moved it.

An accuracy near 0.5 means the fakes of the truth pass for real data.  Both faces of E's
input lose ``adv_margin`` voxels, as in training.

Example::

    python benchmarks/energy_bias.py --phantom prism sphere --steps 1200
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from train_quality import phantom_data  # benchmarks/ is on sys.path when run as a script

from cryogen.model import build_energy, compute_normalisation
from cryogen.rotations import WEDGE_ROTATIONS, rotate, rotate_box
from cryogen.train import TrainConfig, discriminator_loss
from cryogen.wedge import missing_wedge_mask, wedge_operator


def subtomograms(name: str, size: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Clean and corrupted subtomograms of edge ``size`` (ten per phantom), normalised
    like the training data (the corrupted volumes' mean and std)."""
    rng = np.random.default_rng(seed)
    clean_np, corrupted_np = phantom_data(name, -60.0, 60.0, seed)  # the prisms are 96^3
    clean = [torch.from_numpy(v) for v in clean_np]
    corrupted = [torch.from_numpy(v) for v in corrupted_np]
    norm = compute_normalisation(corrupted)
    xs, ys = [], []
    for k in range(10):  # the ten prisms whole; ten random subtomograms of the sphere
        i = k % len(clean)
        o = [int(rng.integers(0, s - size + 1)) for s in clean[i].shape]
        sl = tuple(slice(a, a + size) for a in o)
        xs.append(norm.apply(clean[i][sl].float()))
        ys.append(norm.apply(corrupted[i][sl].float()))
    return xs, ys


def accuracy(
    name: str, scheme: str, steps: int, seed: int, rotate_fakes: bool = True
) -> tuple[float, float, float]:
    cfg = TrainConfig()
    size, crop, margin = cfg.subtomo_size, cfg.crop_size, cfg.adv_margin
    xs, ys = subtomograms(name, size, seed)
    m_crop = missing_wedge_mask((crop,) * 3, cfg.tilt_min, cfg.tilt_max)
    m_sub = missing_wedge_mask((size,) * 3, cfg.tilt_min, cfg.tilt_max)
    wedged_ys = [wedge_operator(v[None, None], m_sub)[0, 0] for v in ys]
    rng = np.random.default_rng(seed + 1)
    torch.manual_seed(seed)
    e = build_energy(cfg)
    opt = torch.optim.Adam(e.parameters(), lr=cfg.d_lr, betas=tuple(cfg.d_betas))

    def cut(v: torch.Tensor, o: tuple[int, ...]) -> torch.Tensor:
        return v[o[0] : o[0] + crop, o[1] : o[1] + crop, o[2] : o[2] + crop]

    def pair() -> tuple[torch.Tensor, torch.Tensor]:
        i, j = int(rng.integers(len(xs))), int(rng.integers(len(xs)))
        o1, o2 = (tuple(int(rng.integers(0, size - crop + 1)) for _ in range(3)) for _ in "ab")
        r = WEDGE_ROTATIONS[int(rng.integers(len(WEDGE_ROTATIONS)))] if rotate_fakes else 0
        if scheme == "crop":
            real = wedge_operator(cut(ys[i], o1)[None, None], m_crop)[0, 0]
            fake = wedge_operator(rotate(cut(xs[j], o2), r)[None, None], m_crop)[0, 0]
        else:
            real = cut(wedged_ys[i], o1)
            wedged = wedge_operator(rotate(xs[j], r)[None, None], m_sub)[0, 0]
            fake = cut(wedged, rotate_box(o2, crop, size, r))
        inner = (slice(margin, crop - margin),) * 3
        return real[inner][None, None], fake[inner][None, None]

    for _ in range(steps):
        real, fake = pair()
        loss = discriminator_loss("bce", e(real).view(-1), e(fake).view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    hits, s_real, s_fake = [], [], []
    with torch.no_grad():
        for _ in range(200):
            real, fake = pair()
            a, b = float(e(real)), float(e(fake))
            hits += [a > 0, b < 0]
            s_real.append(a)
            s_fake.append(b)
    return float(np.mean(hits)), float(np.mean(s_real)), float(np.mean(s_fake))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", nargs="+", choices=["sphere", "prism"], default=["prism"])
    ap.add_argument(
        "--scheme", nargs="+", choices=["crop", "subtomogram"], default=["crop", "subtomogram"]
    )
    ap.add_argument("--steps", type=int, default=1200, help="E updates before scoring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-rotate",
        action="store_true",
        help="fakes of the truth unrotated (CUBE_ROTATIONS[0]): what is left once E cannot "
        "tell by orientation",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'phantom':8} {'scheme':12} {'accuracy':>8} {'score real':>10} {'score fake':>10}")
    for name in args.phantom:
        for scheme in args.scheme:
            acc, sr, sf = accuracy(name, scheme, args.steps, args.seed, not args.no_rotate)
            print(f"{name:8} {scheme:12} {acc:8.3f} {sr:10.2f} {sf:10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
