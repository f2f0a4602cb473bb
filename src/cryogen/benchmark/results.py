"""Typed results of a benchmark run and of a repeat over seeds, and their folders.

:class:`BenchmarkResults` is the content of one run's ``results.json`` and
:class:`RepeatResults` that of a repeat's; ``to_json`` writes the layout those files have
always had and ``from_json`` reads it back (older folders included: what they lack takes its
default), so finished runs load and a repeat resumes over them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from cryogen.benchmark.settings import BenchmarkSettings
from cryogen.errors import OutputError

__all__ = [
    "FORMAT",
    "REPEATS_FORMAT",
    "RESULTS_FILE",
    "SCORING",
    "BenchmarkResults",
    "CurvePoint",
    "PairedStat",
    "RepeatResults",
    "RepeatSummary",
    "Scores",
    "SeedRun",
    "SeedSummary",
    "StabilityStat",
    "Target",
    "TimeToQuality",
    "TrainingRecord",
    "TtqSummary",
    "VolumeScore",
    "make_output_dir",
    "read_results",
    "refuse_held",
    "save_volume",
]

FORMAT = "cryogen-benchmark-1"
REPEATS_FORMAT = "cryogen-benchmark-repeats-1"
RESULTS_FILE = "results.json"
SCORING = (
    "least-squares a*pred+b fit to the truth before scoring (every row); "
    "mean over the volumes; metrics of cryogen.metrics.evaluate"
)

T = TypeVar("T")


def _known(cls: type[T], data: dict[str, Any]) -> T:
    """``cls`` built from the keys of ``data`` that are its fields (the rest take defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


class _Flat:
    """A dataclass whose JSON form is its fields, in their order."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        return _known(cls, data)


# ------------------------------------------------------------------------------ one run
@dataclass
class VolumeScore(_Flat):
    """PSNR (None where infinite) and global SSIM of one volume."""

    psnr: float | None
    ssim_global: float


@dataclass
class Scores:
    """One row of the table: every metric averaged over the volumes.

    ``metrics`` holds the keys of :func:`cryogen.metrics.evaluate` in its order (means of the
    finite values, None where none is finite, and its settings); a method trained on
    half-sets and scored blurred (settings ``blur="auto"``) adds ``half_blur_sigma`` (the
    median width its half-sets chose over the volumes) and ``psnr_unblurred``.
    ``checkpoint`` is the scored checkpoint, relative to the run folder, for a trained
    method.
    """

    metrics: dict[str, Any]
    n_volumes: int = 1
    per_volume: list[VolumeScore] = field(default_factory=list)
    checkpoint: str | None = None

    def get(self, name: str) -> Any:
        """The value of a metric, None where missing."""
        return self.metrics.get(name)

    def to_json(self) -> dict[str, Any]:
        out = {
            **self.metrics,
            "n_volumes": self.n_volumes,
            "per_volume": [v.to_json() for v in self.per_volume],
        }
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scores:
        own = ("n_volumes", "per_volume", "checkpoint")
        return cls(
            {k: v for k, v in data.items() if k not in own},
            int(data.get("n_volumes", 1)),
            [VolumeScore.from_json(v) for v in data.get("per_volume", [])],
            data.get("checkpoint"),
        )


@dataclass
class CurvePoint:
    """A checkpoint's scale-fitted PSNR and global SSIM at a training time."""

    minutes: float
    psnr: float | None
    ssim_global: float | None = None
    step: int = 0
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "minutes": self.minutes,
            "psnr": self.psnr,
            "ssim_global": self.ssim_global,
        }
        if self.note is not None:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CurvePoint:
        return _known(cls, data)


@dataclass
class TrainingRecord:
    """How one method's training went.  ``cpus`` is written for a method trained in its own
    process (``separate_process``): the CPUs it was pinned to, None where it was not."""

    steps: int
    minutes: float
    interrupted: bool = False
    run_dir: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    cpus: list[int] | None = None
    separate_process: bool = False

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["separate_process"]
        if not self.separate_process:
            del out["cpus"]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingRecord:
        return dataclasses.replace(_known(cls, data), separate_process="cpus" in data)


@dataclass
class TimeToQuality(_Flat):
    """When CryoGEN first reached the baseline's final PSNR (see
    :func:`cryogen.benchmark.time_to_quality`)."""

    baseline_psnr: float
    baseline_minutes: float
    reached: bool = False
    minutes: float | None = None
    minutes_checkpoint: float | None = None
    fraction: float | None = None
    fraction_checkpoint: float | None = None


@dataclass
class Target(_Flat):
    """A target a result should meet: what it measures, whether it is met, the value."""

    target: str
    met: bool
    value: str


@dataclass
class BenchmarkResults:
    """The content of one run's ``results.json`` (rewritten after every stage)."""

    settings: BenchmarkSettings
    status: str = "running"
    started: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    device_used: str | None = None
    description: str | None = None
    n_volumes: int = 1
    shape: list[int] = field(default_factory=list)
    voxel_size: float = 1.0
    scores: dict[str, Scores] = field(default_factory=dict)
    training: dict[str, TrainingRecord] = field(default_factory=dict)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)
    time_to_quality: TimeToQuality | None = None
    stability: dict[str, float | None] | None = None
    paper_table1: dict[str, tuple[float, float]] | None = None
    files: list[str] = field(default_factory=list)
    targets: list[Target] | None = None
    total_minutes: float | None = None
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        settings = self.settings.to_json()
        if self.device_used is not None:
            settings["device_used"] = self.device_used
        out: dict[str, Any] = {
            "format": self.format,
            "status": self.status,
            "started": self.started,
            "machine": self.machine,
            "command": self.command,
            "settings": settings,
            "description": self.description,
            "n_volumes": self.n_volumes,
            "shape": self.shape,
            "voxel_size": self.voxel_size,
            "scale_fit": True,
            "scoring": SCORING,
            "scores": {k: v.to_json() for k, v in self.scores.items()},
            "training": {k: v.to_json() for k, v in self.training.items()},
            "curves": {k: [p.to_json() for p in v] for k, v in self.curves.items()},
            "time_to_quality": self.time_to_quality and self.time_to_quality.to_json(),
            "stability": self.stability,
            "paper_table1": self.paper_table1,
            "files": self.files,
        }
        if self.targets is not None:
            out["targets"] = [t.to_json() for t in self.targets]
        if self.total_minutes is not None:
            out["total_minutes"] = self.total_minutes
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchmarkResults:
        settings = data.get("settings", {})
        ttq, paper, targets = (data.get(k) for k in ("time_to_quality", "paper_table1", "targets"))
        plain = {k: v for k, v in data.items() if k not in _NESTED}
        return _known(
            cls,
            {
                **plain,
                "settings": BenchmarkSettings.from_json(settings),
                "device_used": settings.get("device_used"),
                "scores": {k: Scores.from_json(v) for k, v in data.get("scores", {}).items()},
                "training": {
                    k: TrainingRecord.from_json(v) for k, v in data.get("training", {}).items()
                },
                "curves": {
                    k: [CurvePoint.from_json(p) for p in v]
                    for k, v in (data.get("curves") or {}).items()
                },
                "time_to_quality": TimeToQuality.from_json(ttq) if ttq else None,
                "paper_table1": None
                if paper is None
                else {k: (a, b) for k, (a, b) in paper.items()},
                "targets": None if targets is None else [Target.from_json(t) for t in targets],
            },
        )


_NESTED = ("settings", "scores", "training", "curves", "time_to_quality", "paper_table1", "targets")


# ------------------------------------------------------------------------------ a repeat
@dataclass
class SeedRun(_Flat):
    """One seed of a repeat: its folder (relative) and whether a finished run was kept."""

    seed: int
    dir: str
    kept: bool


@dataclass
class PairedStat(_Flat):
    """Paired differences CryoGEN - IsoNet-style of one metric over the seeds: median, mean,
    on how many seeds CryoGEN is better (``ahead``) or worse (``behind``) by the metric's
    direction, out of ``n`` with a value."""

    median: float | None
    mean: float | None
    ahead: int
    behind: int
    n: int


@dataclass
class StabilityStat(_Flat):
    """One method's largest drops over the seeds: the largest, the median, and on how many
    of the ``n`` seeds with a measured drop it met the stability target."""

    max_drop: float | None
    median_drop: float | None
    stable: int
    n: int


@dataclass
class TtqSummary(_Flat):
    """Time to quality over the seeds: each seed's fraction (None: not reached), how many
    reached it, and the median fraction counting "not reached" as longer than any (None
    when half or more were not reached)."""

    fractions: list[float | None]
    reached: int
    n: int
    median_fraction: float | None


@dataclass
class SeedSummary:
    """One seed in a repeat's summary: each row's table metrics (plus ``steps`` and
    ``minutes`` for the methods), the paired differences, time to quality, largest drops."""

    seed: int
    rows: dict[str, dict[str, Any]]
    diff: dict[str, float | None]
    ttq_fraction: float | None
    drop: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            **self.rows,
            "diff": self.diff,
            "ttq_fraction": self.ttq_fraction,
            "drop": self.drop,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeedSummary:
        own = ("seed", "diff", "ttq_fraction", "drop")
        rows = {k: v for k, v in data.items() if k not in own}
        return cls(data["seed"], rows, data["diff"], data.get("ttq_fraction"), data.get("drop", {}))


@dataclass
class RepeatSummary:
    """Medians, ranges and paired differences over the seeds of a repeat (see
    :func:`cryogen.benchmark.summarise_repeats`).  ``median``, ``minimum`` and ``maximum``
    map a row to its metrics."""

    seeds: list[int]
    per_seed: list[SeedSummary]
    median: dict[str, dict[str, float | None]]
    minimum: dict[str, dict[str, float | None]]
    maximum: dict[str, dict[str, float | None]]
    paired: dict[str, PairedStat]
    stability: dict[str, StabilityStat]
    time_to_quality: TtqSummary

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "per_seed": [e.to_json() for e in self.per_seed],
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "paired": {k: v.to_json() for k, v in self.paired.items()},
            "stability": {k: v.to_json() for k, v in self.stability.items()},
            "time_to_quality": self.time_to_quality.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepeatSummary:
        return cls(
            data["seeds"],
            [SeedSummary.from_json(e) for e in data["per_seed"]],
            data["median"],
            data["min"],
            data["max"],
            {k: PairedStat.from_json(v) for k, v in data["paired"].items()},
            {k: StabilityStat.from_json(v) for k, v in data.get("stability", {}).items()},
            TtqSummary.from_json(data["time_to_quality"]),
        )


@dataclass
class RepeatResults:
    """The content of a repeat's ``results.json``.  ``settings.seed`` is the first seed (the
    file's settings leave the seed out: ``seeds`` lists them)."""

    settings: BenchmarkSettings
    seeds: list[int]
    status: str = "running"
    started: str = ""
    command: str | None = None
    runs: list[SeedRun] = field(default_factory=list)
    description: str | None = None
    summary: RepeatSummary | None = None
    targets: list[Target] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    total_minutes: float | None = None
    format: str = REPEATS_FORMAT

    def to_json(self) -> dict[str, Any]:
        settings = self.settings.to_json()
        del settings["seed"]
        out: dict[str, Any] = {
            "format": self.format,
            "status": self.status,
            "started": self.started,
            "command": self.command,
            "settings": settings,
            "seeds": self.seeds,
            "runs": [r.to_json() for r in self.runs],
            "description": self.description,
            "summary": self.summary and self.summary.to_json(),
            "targets": [t.to_json() for t in self.targets],
            "files": self.files,
        }
        if self.total_minutes is not None:
            out["total_minutes"] = self.total_minutes
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepeatResults:
        seeds = list(data.get("seeds", []))
        summary = data.get("summary")
        plain = {
            k: v for k, v in data.items() if k not in ("settings", "runs", "summary", "targets")
        }
        return _known(
            cls,
            {
                **plain,
                "settings": BenchmarkSettings.from_json(
                    {"seed": seeds[0] if seeds else 0, **data.get("settings", {})}
                ),
                "runs": [SeedRun.from_json(r) for r in data.get("runs", [])],
                "summary": RepeatSummary.from_json(summary) if summary else None,
                "targets": [Target.from_json(t) for t in data.get("targets", [])],
            },
        )


# ------------------------------------------------------------------------------ folders
def read_results(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON content of ``folder/results.json``; None where there is none or it cannot be
    read."""
    try:
        data = json.loads((Path(folder) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def refuse_held(folders: list[Path], what: str, advice: str, *, marker: str = RESULTS_FILE) -> None:
    """Raise ``OutputError`` (with ``advice``) for the first folder that holds ``what``
    (its file ``marker``)."""
    for folder in folders:
        if (folder / marker).exists():
            raise OutputError(f"{folder}: already holds {what}", advice=advice)


def make_output_dir(out_dir: Path, *subdirs: str) -> None:
    """Create an output folder (and ``subdirs`` in it) or raise a one-line ``OutputError``
    (a file in the way, no permission)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for sub in subdirs:
            (out_dir / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in the output folder {out_dir}")


def save_volume(path: Path, data: np.ndarray | torch.Tensor, voxel_size: float) -> None:
    """Write a volume as float32 MRC (replacing the file)."""
    from cryogen.io import write_volume

    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    write_volume(path, arr.astype(np.float32, copy=False), voxel_size=voxel_size, overwrite=True)
