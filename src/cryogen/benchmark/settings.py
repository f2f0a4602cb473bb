"""What a benchmark runs (:class:`BenchmarkSettings`) and the training config of each method."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryogen.benchmark.cases import (
    REFERENCES,
    BenchmarkCase,
    build_case,
    case_train_settings,
    check_case,
)
from cryogen.corrupt import check_tilt_range
from cryogen.errors import InputError

if TYPE_CHECKING:
    from cryogen.train import TrainConfig

__all__ = ["METHODS", "METHOD_LABELS", "ROWS", "BenchmarkSettings", "train_config"]

#: The methods a benchmark trains, in the order they run.
METHODS = ("isonet", "cryogen")

#: Row labels of the reports: the reference rows (the corrupted input) and the methods.
METHOD_LABELS = {
    **{r.name: r.label for r in REFERENCES.values()},
    "isonet": "IsoNet-style",
    "cryogen": "CryoGEN",
}

#: The rows of every table, in order.
ROWS = (*REFERENCES, *METHODS)

#: Training config fields the benchmark sets itself (overrides may not).
_OWN_FIELDS = ("method", "steps", "minutes")


@dataclass
class BenchmarkSettings:
    """What :func:`cryogen.benchmark.run_benchmark` runs (the ``cryogen benchmark`` options).

    ``minutes`` is the wall-clock training budget per method; ``steps`` (tests) replaces it by
    a step budget.  ``overrides`` are ``TrainConfig`` fields applied to both methods last.
    ``curve_points`` is about the number of checkpoints per method for the PSNR-time curve.
    ``tta`` predicts (every checkpoint of both methods) with the rotation average of
    ``cryogen predict --tta``.  ``concurrent`` trains (and scores) the two methods at the same
    time, each in its own process on half of the CPUs, instead of one after the other; None
    (the default) chooses: at the same time when they train on the CPU and at least two CPUs
    are available (:meth:`resolved`).  ``halves`` makes two half-sets per volume, trains on
    them (Noise2Noise) and predicts their mean; ``dose`` (e/Å²) and ``defocus`` (µm, a CTF)
    describe a simulated tilt series with half-sets (even and odd frames).  ``blur``: with
    half-sets, ``"auto"`` blurs each method's final prediction by the width its half-sets
    choose, as ``cryogen predict --blur auto`` (the checkpoints' curve stays unblurred);
    ``"none"`` scores the network's output as it is.  ``methods`` are the methods trained
    (both by default; one of them re-measures its rows alone, without the comparisons).
    """

    case: str
    minutes: float = 15.0
    steps: int | None = None
    snr: float | None = None
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    wedge: str = "fourier"
    tilt_step: float = 3.0
    seed: int = 0
    device: str = "auto"
    size: int | None = None
    preset: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    curve_points: int = 10
    tta: bool = False
    concurrent: bool | None = None
    halves: bool = False
    dose: float | None = None
    defocus: float | None = None
    blur: str = "auto"
    methods: tuple[str, ...] = METHODS

    @property
    def compared(self) -> bool:
        """Both methods train: the paired differences and the time to quality exist."""
        return len(self.methods) > 1

    def resolved(self) -> BenchmarkSettings:
        """These settings with ``concurrent`` decided: False for a single method; else as
        given, or, where None, True when the training device is the CPU and this process may
        use at least two CPUs (the cpu preset trains on one thread, so one after the other
        would leave CPUs idle; two trainings on one GPU or on one CPU would only slow each
        other down)."""
        if not self.compared:
            return replace(self, concurrent=False)
        if self.concurrent is not None:
            return self
        from cryogen import device
        from cryogen.device import pick_device

        on_cpu = pick_device(self.device).type == "cpu"
        return replace(self, concurrent=on_cpu and device.cpu_halves() is not None)

    @property
    def paper_protocol(self) -> bool:
        """The paper's protocol (default size, Fourier wedge of +-60 deg, no noise): the
        setting the cases' PSNR targets are meant for."""
        return (
            self.size is None
            and self.wedge == "fourier"
            and self.snr is None
            and (self.tilt_min, self.tilt_max) == (-60.0, 60.0)
        )

    def check(self) -> None:
        """Raise ``InputError`` (one line, in these fields' names) on settings that cannot
        work."""
        check_case(self.case, self.size, self.wedge)
        check_tilt_range(self.tilt_min, self.tilt_max)
        if self.steps is None and not self.minutes > 0:
            raise InputError(f"minutes must be positive, got {self.minutes:g}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if self.snr is not None and not self.snr > 0:
            raise InputError(f"snr must be positive, got {self.snr:g}")
        if self.blur not in ("auto", "none"):
            raise InputError(f"blur must be 'auto' or 'none', got {self.blur!r}")
        if self.curve_points < 1:
            raise InputError(f"curve_points must be >= 1, got {self.curve_points}")
        if not self.tilt_step > 0:
            raise InputError(f"tilt_step must be positive, got {self.tilt_step:g}")
        if self.dose is not None and not self.dose > 0:
            raise InputError(f"dose must be positive (e/Å²), got {self.dose:g}")
        if (self.dose is not None or self.defocus is not None) and not (
            self.halves and self.wedge == "tilt-series"
        ):
            raise InputError("dose and defocus describe a tilt series: use them with halves")
        if self.halves and self.snr is None and self.dose is None:
            raise InputError("half-sets need noise: give the snr (or a tilt series' dose)")
        chosen = set(self.methods)
        if not chosen or not chosen <= set(METHODS) or len(chosen) != len(self.methods):
            raise InputError(
                f"methods must be {' or '.join(METHODS)} or both, each once; "
                f"got {', '.join(self.methods) or 'none'}"
            )
        for key in _OWN_FIELDS:
            if key in self.overrides:
                raise InputError(
                    f"overrides may not set {key}: the benchmark sets it "
                    "(give the budget as minutes or steps)"
                )

    def build_case(self) -> BenchmarkCase:
        """The case these settings describe: its phantom, corruption and seed."""
        return build_case(
            self.case,
            size=self.size,
            seed=self.seed,
            tilt_min=self.tilt_min,
            tilt_max=self.tilt_max,
            snr=self.snr,
            wedge=self.wedge,
            tilt_step=self.tilt_step,
            halves=self.halves,
            dose=self.dose,
            defocus_um=self.defocus,
        )

    def to_json(self) -> dict[str, Any]:
        """The settings as ``results.json`` holds them."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchmarkSettings:
        """Settings read back from ``results.json`` (unknown keys ignored; a folder written
        before ``concurrent`` existed ran the methods one after the other, one written before
        ``blur`` existed scored the networks' output unblurred; every folder written before
        ``methods`` existed trained both)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values.setdefault("concurrent", False)
        values.setdefault("blur", "none")
        values["methods"] = tuple(values.get("methods", METHODS))
        return cls(**values)


def train_config(
    settings: BenchmarkSettings, method: str, *, snapshots: bool = True
) -> TrainConfig:
    """The ``TrainConfig`` of one method: preset < case settings < user overrides.

    With ``snapshots``, training saves about ``curve_points`` generator snapshots (every
    ``steps // curve_points`` steps, or every ``minutes / curve_points`` minutes) for the
    PSNR-time curve; without, none on the way.
    """
    from cryogen.train import TrainConfig

    s = settings
    over: dict[str, Any] = {
        **case_train_settings(s.case, s.size),
        "method": method,
        "seed": s.seed,
        "device": s.device,
        "tilt_min": s.tilt_min,
        "tilt_max": s.tilt_max,
        "checkpoint_every": 10**9,
        "checkpoint_minutes": None,
        # one thread per method: the methods compare on equal footing, and two of them at
        # the same time take one core each
        "threads": 1,
    }
    if s.steps is not None:
        over["steps"] = s.steps
        if snapshots:
            over["checkpoint_every"] = max(1, s.steps // s.curve_points)
    else:
        over["minutes"] = s.minutes
        if snapshots:
            over["checkpoint_minutes"] = s.minutes / s.curve_points
    # None is a value here (no snapshots by time), which overrides would drop
    exact = {"checkpoint_minutes": over.pop("checkpoint_minutes"), **s.overrides}
    # a crop larger than a user-set subtomogram edge would be refused: follow the user's edge
    if "subtomo_size" in exact and "crop_size" not in exact:
        over["crop_size"] = min(int(over.get("crop_size", 64)), int(exact["subtomo_size"]))
    return TrainConfig.from_sources(s.preset, None, over, exact=exact)
