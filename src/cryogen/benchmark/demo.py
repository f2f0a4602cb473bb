"""The shortest benchmark (``cryogen demo``): a small sphere, a +-60 deg Fourier wedge, CryoGEN
trained with the cpu preset for a fixed number of steps, the scores before and after.

A step budget (not minutes) and float32 on every CPU make the scores the same on every
machine up to rounding: a time budget would train as many steps as the CPU and its load
allow, and a run of a few hundred steps says little about the method.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryogen.benchmark.cases import build_case
from cryogen.benchmark.job import Say, predict_volumes, teller
from cryogen.benchmark.results import Scores, make_output_dir, refuse_held, save_volume
from cryogen.benchmark.scoring import score_volumes
from cryogen.benchmark.settings import BenchmarkSettings, train_config
from cryogen.errors import InputError
from cryogen.io import write_json

__all__ = [
    "DEMO_FORMAT",
    "DEMO_METRICS",
    "DEMO_STEPS",
    "MEANINGFUL_STEPS",
    "DemoResults",
    "run_demo",
]

DEMO_FORMAT = "cryogen-demo-1"
SCORES_FILE = "scores.json"

#: The metrics the demo's table shows.
DEMO_METRICS = ("psnr", "ssim_global", "wedge_corr", "res_z", "res_x")
#: The demo's training budget, steps.
DEMO_STEPS = 600
#: A time-budgeted demo that trains fewer steps than this is reported as saying little.
MEANINGFUL_STEPS = 400
#: Settings of the demo on every machine: float32, so that the scores do not depend on
#: whether the CPU runs bfloat16 (``--set amp=...`` overrides it).
DEMO_SETTINGS: dict[str, Any] = {"amp": "off"}


@dataclass
class DemoResults:
    """The content of the demo's ``scores.json``: the corrupted input's and the corrected
    volume's scores (every metric of :func:`cryogen.metrics.evaluate`, scale fit on)."""

    size: int
    corrupted: Scores
    corrected: Scores
    steps: int
    minutes: float
    total_minutes: float
    files: list[str] = field(
        default_factory=lambda: [
            "truth.mrc",
            "corrupted.mrc",
            "corrected.mrc",
            "figure.png",
            SCORES_FILE,
            "run/",
        ]
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": DEMO_FORMAT,
            "size": self.size,
            "scale_fit": True,
            "corrupted": self.corrupted.to_json(),
            "corrected": self.corrected.to_json(),
            "training": {"steps": self.steps, "minutes": self.minutes},
            "total_minutes": self.total_minutes,
            "files": self.files,
        }


def run_demo(
    out_dir: str | os.PathLike[str] = "demo_out",
    *,
    steps: int | None = None,
    minutes: float | None = None,
    size: int = 64,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    say: Say | None = None,
) -> DemoResults:
    """Build the sphere case of ``size`` (a Fourier wedge of [-60, 60]), train CryoGEN for
    ``steps`` (default :data:`DEMO_STEPS`) or ``minutes`` of wall clock, predict, score the
    corrupted input and the prediction (scale fit on) and write ``truth.mrc``,
    ``corrupted.mrc``, ``corrected.mrc``, ``figure.png``, ``scores.json`` and the training
    run ``run/`` into ``out_dir``.  Without ``progress``, ``say`` gets the step count and the
    time left every tenth of the run; a time budget that trains fewer than
    :data:`MEANINGFUL_STEPS` steps is reported as saying little.

    Raises
    ------
    InputError
        Both ``steps`` and ``minutes``, or ``out_dir`` holds a demo (without ``overwrite``).
    """
    from cryogen.model import load_model
    from cryogen.train import train

    if steps is not None and minutes is not None:
        raise InputError("give the demo's budget as steps or minutes, not both")
    if steps is None and minutes is None:
        steps = DEMO_STEPS
    out = Path(out_dir)
    tell = teller(say)
    settings = BenchmarkSettings(
        "sphere", minutes=minutes or 0.0, steps=steps, seed=seed, size=size,
        overrides={**DEMO_SETTINGS, **(overrides or {})},
    )  # fmt: skip
    settings.check()
    if not overwrite:
        refuse_held([out], "a demo", "overwrite", marker=SCORES_FILE)
    cfg = train_config(settings, "cryogen", snapshots=False)
    make_output_dir(out)
    t0 = time.perf_counter()
    case = build_case("sphere", size=size)
    truth, y = case.truth[0], case.corrupted[0]
    tell(
        f"hollow sphere in {size}^3 (diameter {size / 2:g}, shell {min(4.0, size / 8):g} px), "
        "+-60 deg missing wedge"
    )
    budget = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.minutes:g} min"
    tell(f"training CryoGEN (cpu preset, {budget})")
    callback = None if progress else _reporter(tell)
    res = train(cfg, [y.numpy()], out / "run", overwrite=True, progress=progress, callback=callback)
    if cfg.steps is None and res.step < MEANINGFUL_STEPS:
        tell(
            f"warning: only {res.step} steps fit in {cfg.minutes:g} min on this machine (the "
            f"demo's scores need about {DEMO_STEPS}); they say little about the method. Run "
            "the demo with its step budget (no --minutes) for the scores of the README."
        )
    pred = predict_volumes(load_model(out / "run", cfg.device), [y.numpy()])[0]
    before, after = (
        score_volumes([v], [truth], tilt_min=-60.0, tilt_max=60.0, voxel_size=1.0)
        for v in (y, pred)
    )
    for name, arr in (("truth", truth), ("corrupted", y), ("corrected", pred)):
        save_volume(out / f"{name}.mrc", arr, 1.0)
    _figure(out / "figure.png", truth.numpy(), y.numpy(), pred, before, after, res)
    result = DemoResults(
        int(size),
        before,
        after,
        res.step,
        res.elapsed_s / 60.0,
        (time.perf_counter() - t0) / 60.0,
    )
    write_json(out / SCORES_FILE, result.to_json())
    return result


def _reporter(tell: Say) -> Any:
    """A training callback that tells the step and the time left every tenth of the run."""
    reported = [0]

    def report(info: dict[str, Any]) -> None:
        tenth = int(10 * info["progress"])
        if tenth > reported[0] and info["progress"] > 0:
            reported[0] = tenth
            elapsed = info["elapsed_s"]
            left = elapsed * (1.0 - info["progress"]) / info["progress"]
            tell(f"  step {info['step']}, {elapsed / 60:.1f} min, about {left / 60:.1f} min left")

    return report


def _figure(
    path: Path,
    truth: np.ndarray,
    corrupted: np.ndarray,
    pred: np.ndarray,
    before: Scores,
    after: Scores,
    res: Any,
) -> None:
    from cryogen.figures import ortho_and_fourier_figure
    from cryogen.metrics import apply_scale_fit

    ortho_and_fourier_figure(
        [truth, corrupted, apply_scale_fit(pred, truth).astype(np.float32)],
        ["truth", "corrupted (+-60 deg)", "CryoGEN"],
        path,
        voxel_size=1.0,
        tilt_range=(-60.0, 60.0),
        suptitle=(
            f"cryogen demo: PSNR {before.get('psnr'):.2f} -> {after.get('psnr'):.2f} dB after "
            f"{res.step} steps ({res.elapsed_s / 60:.1f} min)"
        ),
    )
