"""Side-by-side benchmarks on phantoms with a known answer (the paper's Table 1).

A benchmark builds a *case* (clean volumes and their corrupted copies, :mod:`.cases`), trains
the IsoNet-style baseline and CryoGEN on the corrupted volumes with the same budget, seed and
data (one after the other, or at the same time on two halves of the CPUs, :mod:`.concurrent`),
predicts, and scores the corrupted input and both predictions against the truth with every
metric of :func:`cryogen.metrics.evaluate` (least-squares scale fit on, :mod:`.scoring`).
From the generator snapshots saved during training it draws PSNR against training time for
both methods and reads off the *time to quality*: the training time CryoGEN needs to reach
the baseline's final PSNR, as a fraction of the baseline's budget (the paper's headline
claim is a tenth).

Modules: ``cases`` (the phantoms and their corruption), ``settings`` (what a run runs, the
training config of each method), ``run`` (one method; one run end to end), ``concurrent``
(both methods at once), ``scoring``, ``results`` (typed results and their JSON), ``report``
(results.md, figures), ``repeats`` (a run over several seeds), ``demo``.
"""

from cryogen.benchmark.cases import (
    CASES,
    REFERENCES,
    BenchmarkCase,
    Case,
    Reference,
    build_case,
    case_train_settings,
    paper_table1,
)
from cryogen.benchmark.demo import DEMO_METRICS, DemoResults, run_demo
from cryogen.benchmark.job import MethodJob, MethodOutcome, predict_volumes
from cryogen.benchmark.repeats import repeat_targets, run_benchmark_repeats, summarise_repeats
from cryogen.benchmark.report import (
    format_metric,
    format_signed,
    psnr_time_figure,
    render_markdown,
    render_repeats_markdown,
    repeats_figure,
)
from cryogen.benchmark.results import (
    FORMAT,
    REPEATS_FORMAT,
    BenchmarkResults,
    CurvePoint,
    PairedStat,
    RepeatResults,
    RepeatSummary,
    Scores,
    SeedRun,
    SeedSummary,
    StabilityStat,
    Target,
    TimeToQuality,
    TrainingRecord,
    TtqSummary,
    VolumeScore,
)
from cryogen.benchmark.run import run_benchmark
from cryogen.benchmark.scoring import (
    STABLE_AFTER_MINUTES,
    STABLE_DROP_DB,
    largest_drop,
    run_targets,
    score_volumes,
    stability_target,
    time_to_quality,
)
from cryogen.benchmark.settings import (
    METHOD_LABELS,
    METHODS,
    ROWS,
    BenchmarkSettings,
    train_config,
)

__all__ = [
    "CASES",
    "DEMO_METRICS",
    "FORMAT",
    "METHODS",
    "METHOD_LABELS",
    "REFERENCES",
    "REPEATS_FORMAT",
    "ROWS",
    "STABLE_AFTER_MINUTES",
    "STABLE_DROP_DB",
    "BenchmarkCase",
    "BenchmarkResults",
    "BenchmarkSettings",
    "Case",
    "CurvePoint",
    "DemoResults",
    "MethodJob",
    "MethodOutcome",
    "PairedStat",
    "Reference",
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
    "build_case",
    "case_train_settings",
    "format_metric",
    "format_signed",
    "largest_drop",
    "paper_table1",
    "predict_volumes",
    "psnr_time_figure",
    "render_markdown",
    "render_repeats_markdown",
    "repeat_targets",
    "repeats_figure",
    "run_benchmark",
    "run_benchmark_repeats",
    "run_demo",
    "run_targets",
    "score_volumes",
    "stability_target",
    "summarise_repeats",
    "time_to_quality",
    "train_config",
]
