"""DeepDeWedge beside CryoGEN-ET on the SNR 0.2 sphere's half-sets, same data and wall clock.

DeepDeWedge (Wiedemann & Heckel, public code) is not a dependency of CryoGEN-ET: install
it in its own environment (``pip install -e DeepDeWedge`` with pytorch-lightning 2) and
run its side there.  It is written for GPUs and pytorch-lightning 1; to run it on a CPU
with pytorch-lightning 2 these changes to its ``fit_model.py`` and ``utils/unet.py`` are
needed (nothing in its model, loss or data handling changes):

* ``pl.Trainer(accelerator="cpu", devices=1, strategy="auto", max_time=BUDGET,
  detect_anomaly=False)``, without the removed ``resume_from_checkpoint`` argument;
* data loaders with ``persistent_workers=num_workers > 0`` and ``pin_memory=False``;
* ``self.trainer.train_dataloader`` for ``...train_dataloader.loaders`` and
  ``self.trainer.val_dataloaders`` for ``...val_dataloaders[0]``.

``BUDGET`` comes from the environment variable ``DDW_MAX_TIME`` (``DD:HH:MM:SS``), set by
this script.  The settings: sub-tomograms of 64^3 (extraction stride 24, 10 % for
validation), DeepDeWedge's learning rate (4e-4) and wedge update every 10 epochs, batch
2, and a U-Net of the cpu preset's size (8 channels, 4 downsamplings: 8-16-32-64-128).

Steps (run the same folder, the two trainings at the same time, one core each)::

    python deepdewedge_peer.py runs/peer data                              # halves, truth
    OMP_NUM_THREADS=1 taskset -c 0 python deepdewedge_peer.py runs/peer ours --minutes 20 &
    OMP_NUM_THREADS=1 taskset -c 1 DDW_PYTHON deepdewedge_peer.py runs/peer ddw --minutes 20
    python deepdewedge_peer.py runs/peer score
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_data(out: Path) -> None:
    """The benchmark's sphere at SNR 0.2 as two half-sets, their mean and the truth."""
    from cryogen.benchmark import build_case
    from cryogen.io import write_volume

    case = build_case("sphere", snr=0.2, halves=True, seed=0)
    assert case.halves is not None
    h0, h1 = case.halves[0]
    volumes = {"half0": h0, "half1": h1, "truth": case.truth[0], "mean": case.corrupted[0]}
    for name, v in volumes.items():
        write_volume(out / f"{name}.mrc", v.numpy(), voxel_size=case.voxel_size, overwrite=True)


def run_ours(out: Path, minutes: float) -> None:
    """``cryogen train --halves`` (the cpu preset's IsoNet-style method, the benchmark's
    sphere layout), then ``cryogen predict`` of the mean."""
    cryogen = [sys.executable, "-m", "cryogen"]
    halves = [str(out / "half0.mrc"), str(out / "half1.mrc")]
    subprocess.run(
        [*cryogen, "train", "--halves", *halves, "-o", str(out / "ours"), "--method", "isonet",
         "--minutes", str(minutes), "--tilt-min", "-60", "--tilt-max", "60", "--threads", "1",
         "--set", "subtomo_size=96", "--set", "n_subtomos=10", "--overwrite", "--quiet"],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*cryogen, "predict", str(out / "ours"), str(out / "mean.mrc"), "-o",
         str(out / "ours_pred.mrc"), "--overwrite", "--quiet"],
        check=True,
    )  # fmt: skip


def run_ddw(out: Path, minutes: float) -> None:
    """DeepDeWedge's prepare-data, fit-model (for ``minutes`` of wall clock, its data
    preparation included) and refine-tomogram, from its Python functions."""
    from ddw.fit_model import fit_model
    from ddw.prepare_data import prepare_data
    from ddw.refine_tomogram import refine_tomogram

    project = out / "ddw"
    shutil.rmtree(project, ignore_errors=True)
    halves = [str(out / "half0.mrc")], [str(out / "half1.mrc")]
    start = time.time()
    prepare_data(
        tomo0_files=halves[0], tomo1_files=halves[1], subtomo_size=64, val_fraction=0.1,
        mask_files=[], min_nonzero_mask_fraction_in_subtomo=0.0,
        subtomo_extraction_strides=[24, 24, 24], pad_before_subtomo_extraction=False,
        extract_larger_subtomos_for_rotating=True, standardize_full_tomos=False,
        project_dir=str(project), overwrite=True, seed=0, verbose=False, config=None,
        subtomo_dir=None,
    )  # fmt: skip
    left = int(minutes * 60 - (time.time() - start))
    os.environ["DDW_MAX_TIME"] = f"00:00:{left // 60:02d}:{left % 60:02d}"
    fit_model(
        unet_params_dict={"chans": 8, "num_downsample_layers": 4, "drop_prob": 0.0},
        adam_params_dict={"lr": 4e-4}, num_epochs=100000, batch_size=2, subtomo_size=64,
        mw_angle=60, gpu=[0], num_workers=0, project_dir=str(project), logger="csv",
        check_val_every_n_epochs=10, update_subtomo_missing_wedges_every_n_epochs=10,
        save_model_every_n_epochs=1, save_n_models_with_lowest_fitting_loss=1,
        save_n_models_with_lowest_val_loss=1, resume_from_checkpoint=None,
        distributed_backend="gloo", seed=0, config=None, subtomo_dir=None, logdir=None,
    )  # fmt: skip
    fit_s = time.time() - start
    checkpoints = sorted(
        project.glob("logs/version_*/checkpoints/epoch/*.ckpt"), key=os.path.getmtime
    )
    refine_tomogram(
        tomo0_files=halves[0], tomo1_files=halves[1], model_checkpoint_file=str(checkpoints[-1]),
        subtomo_size=64, mw_angle=60, subtomo_overlap=32, standardize_full_tomos=False,
        recompute_normalization=True, batch_size=2, return_tomos=False,
        output_dir=str(out / "ddw_out"), project_dir=None, num_workers=0, gpu=None, config=None,
    )  # fmt: skip
    record = {"seconds": fit_s, "checkpoint": str(checkpoints[-1])}
    (out / "ddw_time.json").write_text(json.dumps(record))


def score(out: Path) -> None:
    """PSNR / global SSIM of every result against the truth, as ``cryogen benchmark``
    scores (scale fit), with the input and the best Gaussian blur."""
    import torch

    from cryogen.benchmark.baselines import best_gaussian_blur
    from cryogen.benchmark.scoring import score_volumes
    from cryogen.io import read_volume

    def load(path: Path) -> torch.Tensor:
        # DeepDeWedge writes voxel size 0: the phantom's is 1 Å
        return torch.from_numpy(np.array(read_volume(path, pixel_size=1.0).load()))

    truth = load(out / "truth.mrc")
    rows = {"input (mean of halves)": load(out / "mean.mrc")}
    sigma, blurred = best_gaussian_blur([rows["input (mean of halves)"]], [truth])
    rows[f"best Gaussian blur (sigma {sigma:g})"] = blurred[0]
    if (out / "ours_pred.mrc").exists():
        rows["CryoGEN-ET, IsoNet-style on half-sets"] = load(out / "ours_pred.mrc")
    for path in sorted((out / "ddw_out").glob("*.mrc")):
        rows["DeepDeWedge"] = load(path)
    for name, volume in rows.items():
        m = score_volumes([volume], [truth], tilt_min=-60, tilt_max=60, voxel_size=1.0).metrics
        print(f"{name:40s} {m['psnr']:6.2f} / {m['ssim_global']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="working folder")
    parser.add_argument("what", choices=["data", "ours", "ddw", "score"])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "data":
        make_data(args.out)
    elif args.what == "ours":
        run_ours(args.out, args.minutes)
    elif args.what == "ddw":
        run_ddw(args.out, args.minutes)
    else:
        score(args.out)


if __name__ == "__main__":
    main()
