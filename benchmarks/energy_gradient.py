"""How hard the energy term pulls on the generator, against the consistency term.

Loads a CryoGEN run of ``benchmarks/train_quality.py`` (its ``last.pt``: g, E and the
random streams), and for ``--draws`` training steps of its data computes the norm of g's
gradient from the consistency term alone and from the energy term alone (weight 1),
without updating g (E keeps learning, as in training).  The ratio of the medians, times
the run's ``adv_weight``, is the size of the energy term's pull relative to the
consistency term's at the end of that run.

Example::

    python benchmarks/energy_gradient.py runs/prism_cg --phantom prism --draws 20
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
from pathlib import Path

import torch
from train_quality import phantom_data  # benchmarks/ is on sys.path when run as a script

from cryogen.train import TrainConfig, Trainer

#: the settings that isolate each term (d_start first: it must not exceed adv_start)
TERMS: dict[str, dict[str, float]] = {
    "consistency": {"d_start": 0.0, "adv_start": 0.0, "adv_ramp": 0.0, "adv_weight": 0.0},
    "energy": {
        "d_start": 0.0,
        "adv_start": 0.0,
        "adv_ramp": 0.0,
        "adv_weight": 1.0,
        "consistency_weight": 0.0,
        "lambda_min": 0.0,
    },
}


def gradient_norms(run: Path, phantom: str, draws: int) -> dict[str, float]:
    cfg = TrainConfig.model_validate_json((run / "config.json").read_text())
    _, corrupted = phantom_data(phantom, cfg.tilt_min, cfg.tilt_max, cfg.seed)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("last.pt", "config.json"):
            shutil.copy(run / name, Path(tmp) / name)
        t = Trainer(cfg.model_copy(), corrupted, Path(tmp), resume=True)  # t.cfg changes
        t.networks.start_training()
        params = [p for p in t.networks.g.parameters() if p.requires_grad]
        for name, settings in TERMS.items():
            for key, value in settings.items():  # in place: every part of t sees them
                setattr(t.cfg, key, value)
            norms: list[float] = []
            for _ in range(draws):
                # E learns as in training (inside the step); g is measured, not updated
                batch, _ = t.next_batch(1.0)
                loss = t.method.losses(batch, 1.0).loss
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                norms.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None)))
            out[name] = statistics.median(norms)
    out["adv_weight"] = cfg.adv_weight
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a CryoGEN run folder of train_quality.py")
    ap.add_argument("--phantom", choices=["sphere", "prism"], required=True)
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    r = gradient_norms(args.run, args.phantom, args.draws)
    ratio = r["energy"] / r["consistency"]
    print(
        f"median |grad_g| consistency {r['consistency']:.4g}, energy (weight 1) {r['energy']:.4g}"
    )
    print(
        f"energy / consistency: {ratio:.3g} at weight 1, {ratio * r['adv_weight']:.3g} at the "
        f"run's adv_weight {r['adv_weight']:g}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
