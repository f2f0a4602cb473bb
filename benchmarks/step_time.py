"""Time one generator training step (forward, backward, Adam) per architecture and precision.

The measurement behind the ``cpu`` preset's generator and ``amp="auto"``: on a CPU, bfloat16
convolutions are fast only where oneDNN has AVX-512 kernels, and the plain U-Net is cheaper
per step than the U-Net++ at a similar parameter count.  Every configuration is timed in
the same process, interleaved round by round so that load from other jobs hits them alike;
the table gives the median over rounds and the ratio to the first configuration.

Example (one thread on one core, as training runs on the CPU)::

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/step_time.py --size 64 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cryogen.device import cpu_has_fast_bf16
from cryogen.nets import UNetPlusPlus, count_parameters

CONFIGS = {
    "unetpp-8-128": dict(features=(8, 16, 32, 64, 128), nested=True),
    "unet-16-128": dict(features=(16, 32, 64, 128), nested=False),
    "unet-8-128": dict(features=(8, 16, 32, 64, 128), nested=False),
    "unet-16-256": dict(features=(16, 32, 64, 128, 256), nested=False),
}


def make_step(name: str, dtype: torch.dtype | None, size: int, channels_last: bool):
    torch.manual_seed(0)
    net = UNetPlusPlus(norm=None, **CONFIGS[name])
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(1, 1, size, size, size).to(memory_format=fmt)
    target = torch.randn_like(x)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = (net(x).float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return net, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64, help="crop edge (voxels)")
    ap.add_argument("--rounds", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--archs", default=",".join(CONFIGS), help="comma-separated subset")
    ap.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16")
    ap.add_argument("--channels-last", action="store_true", help="channels-last 3D memory")
    args = ap.parse_args()

    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"fast bf16: {cpu_has_fast_bf16()}, threads {torch.get_num_threads()}, "
        f"{args.size}^3 crop"
    )
    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    runs = {}
    for arch in args.archs.split(","):
        for prec in args.precisions.split(","):
            net, step = make_step(arch, dtypes[prec], args.size, args.channels_last)
            step()  # warm-up: oneDNN primitive creation, allocator
            runs[(arch, prec)] = (count_parameters(net), step, [])
    for _ in range(args.rounds):
        for _params, step, times in runs.values():
            times.append(step())
    first = None
    print("| generator | params | precision | median s/step | ratio |")
    print("|---|---|---|---|---|")
    for (arch, prec), (params, _step, times) in runs.items():
        med = statistics.median(times)
        first = first or med
        print(f"| {arch} | {params / 1e6:.2f} M | {prec} | {med:.3f} | {med / first:.2f} |")


if __name__ == "__main__":
    main()
