"""Throughput and peak memory of streamed whole-tomogram prediction (``cryogen predict``).

For every size and sample count the prediction runs in a fresh Python process (so that
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is that case's own peak resident set, memory
maps included); the process loads the model and calls :func:`cryogen.predict.predict_file`,
the function behind ``cryogen predict``, on a float32 MRC tomogram of random values.

The model is the cpu preset's generator (``TrainConfig()`` defaults, ``build_generator``),
untrained: its weights do not change the cost of a forward pass, so the numbers hold for a
trained model of the same preset.  (Its zero-initialised residual head makes it the
identity; the output is not inspected.)

Sizes are given as ``XxYxZ`` (MRC ``nx x ny x nz``; ``Z`` is the thickness along the beam).

Examples::

    # the timed cases of docs/benchmarks.md (one CPU core)
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/predict_scale.py \
        --sizes 512x512x200,1024x1024x300 --samples 1,4 --json predict_scale.json
    # a smoke test of the script (seconds)
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/predict_scale.py --sizes 64x64x32

Output: one row per case with the wall time of the prediction, voxels per second (output
voxels / wall time, whatever the sample count), seconds per tile and sample, and the peak
resident set in MiB, beside the resident set after imports and model loading.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 1024**3


def parse_size(text: str) -> tuple[int, int, int]:
    """``"1024x1024x300"`` (x, y, z) -> array shape ``(300, 1024, 1024)`` (z, y, x)."""
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 3 or min(parts) < 1:
        raise SystemExit(f"size {text!r}: expected XxYxZ, e.g. 1024x1024x300")
    nx, ny, nz = parts
    return nz, ny, nx


def make_checkpoint(path: Path) -> None:
    import torch

    from cryogen.model import build_generator, save_checkpoint
    from cryogen.train import TrainConfig

    cfg = TrainConfig()  # the cpu preset's defaults
    torch.manual_seed(0)
    g = build_generator(cfg)
    save_checkpoint(
        path,
        {
            "kind": "generator",
            "config": cfg.model_dump(mode="json"),
            "method": cfg.method,
            "tilt_min": cfg.tilt_min,
            "tilt_max": cfg.tilt_max,
            "voxel_size": 10.0,
            "normalisation": {"mean": 0.0, "std": 1.0},
            "crop_size": cfg.crop_size,
            "step": 0,
            "elapsed_s": 0.0,
            "generator": g.state_dict(),
        },
    )


def make_tomogram(path: Path, shape: tuple[int, int, int]) -> None:
    """A float32 MRC of standard normal values, written slab by slab (bounded memory)."""
    from cryogen.io import create_volume_memmap

    rng = np.random.default_rng(0)
    with create_volume_memmap(path, shape, voxel_size=10.0, overwrite=True) as mm:
        step = max(1, (64 * 1024**2) // (4 * shape[1] * shape[2]))
        for z in range(0, shape[0], step):
            z1 = min(shape[0], z + step)
            mm[z:z1] = rng.standard_normal((z1 - z, shape[1], shape[2]), dtype=np.float32)


def worker(args: argparse.Namespace) -> None:
    """One case, in this process: print a JSON line with timings and the peak RSS."""
    import resource

    from cryogen.device import setup_threads
    from cryogen.predict import PredictOptions, load_model, predict_file

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    setup_threads(args.threads)
    t0 = time.perf_counter()
    model = load_model(args.checkpoint, "cpu")
    load_s = time.perf_counter() - t0
    base = rss_mib()
    out = Path(args.output)
    std = out.with_name(out.stem + "_std.mrc") if args.n_samples > 1 else None
    options = PredictOptions(
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        samples=args.n_samples,
        keep_measured=args.keep_measured,
    )
    res = predict_file(model, args.input, out, options, std_path=std, overwrite=True)
    peak = rss_mib()
    vox = math.prod(res.shape)
    tiles = res.tiles
    print(
        json.dumps(
            {
                "shape_zyx": list(res.shape),
                "voxels": vox,
                "samples": args.n_samples,
                "keep_measured": args.keep_measured,
                "tile": args.tile or model.crop_size,
                "overlap": args.overlap,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "tiles": tiles,
                "load_s": round(load_s, 3),
                "predict_s": round(res.seconds, 3),
                "voxels_per_s": round(vox / res.seconds, 1),
                "s_per_tile_sample": round(res.seconds / (tiles * args.n_samples), 4),
                "rss_after_load_mib": round(base, 1),
                "peak_rss_mib": round(peak, 1),
                "peak_rss_gib": round(peak / 1024, 3),
            }
        )
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="512x512x200,1024x1024x300", help="XxYxZ,... (MRC order)")
    ap.add_argument("--samples", default="1,4", help="sample counts to run, e.g. 1,4")
    ap.add_argument("--keep-measured", action="store_true", help="also apply --keep-measured")
    ap.add_argument("--tile", type=int, default=64, help="tile edge, voxels (default 64)")
    ap.add_argument("--overlap", type=int, default=16, help="tile overlap, voxels (default 16)")
    ap.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the files (temp)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--keep-files", action="store_true", help="keep the work folder")
    # internal: one case in a subprocess
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--n-samples", type=int, default=1, help=argparse.SUPPRESS)
    return ap.parse_args()


def run_case(args: argparse.Namespace, ckpt: Path, tomo: Path, out: Path, n: int) -> dict:
    """One case in a fresh process (its own peak resident set); returns its row."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--checkpoint", str(ckpt),
        "--input", str(tomo),
        "--output", str(out),
        "--n-samples", str(n),
        "--tile", str(args.tile),
        "--overlap", str(args.overlap),
        "--batch-size", str(args.batch_size),
        "--threads", str(args.threads),
    ]  # fmt: skip
    if args.keep_measured:
        cmd.append("--keep-measured")
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"case {tomo.name} samples {n} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    cols = [
        "size (x*y*z)",
        "samples",
        "keep-measured",
        "tiles",
        "time (s)",
        "voxels/s",
        "s/tile/sample",
        "peak RSS (GiB)",
        "RSS after load (GiB)",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        z, y, x = r["shape_zyx"]
        print(
            f"| {x}x{y}x{z} | {r['samples']} | {'yes' if r['keep_measured'] else 'no'} "
            f"| {r['tiles']} | {r['predict_s']:.1f} | {r['voxels_per_s']:.3g} "
            f"| {r['s_per_tile_sample']:.3f} | {r['peak_rss_gib']:.2f} "
            f"| {r['rss_after_load_mib'] / 1024:.2f} |"
        )


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    sample_counts = [int(s) for s in args.samples.split(",") if s.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cryogen-predict-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        ckpt = work / "cpu_preset_untrained.pt"
        make_checkpoint(ckpt)
        for shape in sizes:
            tomo = work / f"tomo_{shape[2]}x{shape[1]}x{shape[0]}.mrc"
            t0 = time.perf_counter()
            make_tomogram(tomo, shape)
            print(f"# wrote {tomo} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
            for n in sample_counts:
                rows.append(run_case(args, ckpt, tomo, work / f"pred_{tomo.stem}_s{n}.mrc", n))
                print(json.dumps(rows[-1]), file=sys.stderr)
                for p in work.glob(f"pred_{tomo.stem}_s{n}*.mrc"):
                    p.unlink()
            tomo.unlink()
    finally:
        if not args.keep_files and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
