"""``run.log``: a training run that explains itself.

One plain-text file in the run folder, appended to by every start and resume of the run:
where it ran (host, versions, the command line, the resolved device, precision and
threads), on what (tilt range, the tomograms and masks, the subtomograms, the
normalisation), its budget, a line per checkpoint (step, time, losses), the warnings the
package logged meanwhile, and how it ended (finished, stopped by a signal, failed) with its
timings and final losses.  Each line starts with the local time.  Writing it never stops a
run: a failed write is logged once and the run goes on.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import socket
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cryogen.train.losses import SHOWN_TERMS

if TYPE_CHECKING:
    from cryogen.train.trainer import Trainer

__all__ = [
    "RUN_LOG",
    "RunLog",
    "amp_name",
    "close_run_log",
    "describe_end",
    "describe_start",
    "losses_text",
    "open_run_log",
    "run_log",
]

logger = logging.getLogger(__name__)

RUN_LOG = "run.log"

_OPEN: dict[Path, RunLog] = {}
_DTYPE_NAMES = {
    None: "float32",
    torch.bfloat16: "bfloat16 autocast",
    torch.float16: "float16 autocast",
}


def amp_name(dtype: torch.dtype | None) -> str:
    """The ``amp`` setting that means ``dtype``: ``"off"``, ``"bf16"`` or ``"fp16"``."""
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


class _Copy(logging.Handler):
    """Copies the package's warnings (from the run's thread) into ``run.log``."""

    def __init__(self, log: RunLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.log.write(f"{record.levelname.lower()}: {record.getMessage()}")


class RunLog:
    """Lines appended to ``path`` (nothing written when ``enabled`` is false)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.failed = False
        self.started = False  # the session's first lines are written
        self.thread = threading.get_ident()
        self._handler: _Copy | None = None

    def write(self, *lines: str) -> None:
        """Append ``lines``, each after the local time; never raises."""
        if not self.enabled or self.failed:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with self.path.open("a") as fh:
                fh.writelines(f"{stamp}  {line}\n" for line in lines)
        except OSError as exc:
            self.failed = True
            logger.warning("%s: cannot write (%s); the run goes on", self.path, exc.strerror)

    def attach(self) -> None:
        """Copy the ``cryogen`` loggers' warnings in from now on."""
        if self.enabled and self._handler is None:
            self._handler = _Copy(self)
            logging.getLogger("cryogen").addHandler(self._handler)

    def detach(self) -> None:
        if self._handler is not None:
            logging.getLogger("cryogen").removeHandler(self._handler)
            self._handler = None


def open_run_log(run_dir: Path, *, enabled: bool = True) -> RunLog:
    """The ``run.log`` of ``run_dir``, copying warnings in until :func:`close_run_log`."""
    key = run_dir.resolve()
    log = _OPEN.get(key)
    if log is None:
        # a thread trains one run at a time: logs it opened for runs that never ran (a
        # Trainer built and dropped) stop collecting warnings
        me = threading.get_ident()
        for other in [k for k, v in _OPEN.items() if v.thread == me]:
            _OPEN.pop(other).detach()
        log = _OPEN[key] = RunLog(run_dir / RUN_LOG, enabled=enabled)
        log.attach()
    return log


def run_log(run_dir: Path) -> RunLog:
    """The open ``run.log`` of ``run_dir`` (a disabled one when none is open)."""
    return _OPEN.get(run_dir.resolve()) or RunLog(run_dir / RUN_LOG, enabled=False)


def close_run_log(run_dir: Path, error: BaseException | None = None) -> None:
    """Stop copying warnings into ``run_dir``'s log; with ``error``, say how the run failed."""
    log = _OPEN.pop(run_dir.resolve(), None)
    if log is None:
        return
    if error is not None and log.started:  # a refused start leaves the old log alone
        what = type(error).__name__ if isinstance(error, (KeyboardInterrupt, SystemExit)) else ""
        log.write(f"failed: {what or error}")
    log.detach()


# ------------------------------------------------------------------------------ what it says
def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _device_text(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({_cpu_model()}, {torch.backends.cpu.get_cpu_capability()})"
    return str(device)


def _budget(cfg: Any) -> str:
    parts = []
    if cfg.steps is not None:
        parts.append(f"{cfg.steps} steps")
    if cfg.minutes is not None:
        parts.append(f"{cfg.minutes:g} minutes")
    return " or ".join(parts)


def losses_text(row: dict[str, Any]) -> str:
    """The shown terms of a row of ``losses.csv``: ``"loss 0.123 cons 0.1"``."""
    shown = []
    for key, label in SHOWN_TERMS:
        v = row.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            shown.append(f"{label} {v:.4g}")
    return " ".join(shown)


def _tilt_text(cfg: Any, data: Any) -> str:
    """``"[-60, 60] deg"``, or each tomogram's range when they differ."""
    ranges = getattr(data, "tilt_ranges", None) or [(cfg.tilt_min, cfg.tilt_max)]
    shown = sorted({f"[{a:g}, {b:g}]" for a, b in ranges})
    return f"{', '.join(shown)} deg" + (" (one per tomogram)" if len(shown) > 1 else "")


def describe_start(t: Trainer, resumed: bool) -> list[str]:
    """The lines that open a session of the run ``t``: where, what on, which budget."""
    cfg, data = t.cfg, t.data
    argv = " ".join(sys.argv) if sys.argv and sys.argv[0] else ""
    lines = [
        f"resumed at step {t.step} ({t.elapsed / 60:.1f} min of training done)"
        if resumed
        else "new run",
        f"host {socket.gethostname()}, pid {os.getpid()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, cryogen {_version()}",
    ]
    if argv and Path(sys.argv[0]).name in ("cryogen", "__main__.py"):  # the command line
        lines.append(f"command: cryogen {' '.join(sys.argv[1:])}")
    lines += [
        f"device: {_device_text(t.device)}; world size {t.dist.world_size}",
        f"precision: {_DTYPE_NAMES.get(t.amp, str(t.amp))} (amp {cfg.amp!r}); threads: "
        f"{torch.get_num_threads()} ({'threads setting' if cfg.threads else 'default'})",
        f"method: {cfg.method}, preset {cfg.preset}, seed {cfg.seed}; budget: {_budget(cfg)}; "
        f"batch {cfg.batch_size}, lr {cfg.lr:g}",
        f"tilt range: {_tilt_text(cfg, data)}",
    ]
    inputs = list(getattr(t, "inputs", None) or [])
    volumes = {i for i, *_ in data.origins}
    lines.append(f"tomograms: {len(inputs) or len(volumes)}, voxel size {t.voxel_size:g} Å")
    lines += [f"  {line}" for line in inputs]
    halves = " (with half-sets)" if getattr(data, "halves", None) is not None else ""
    norm = data.normalisation
    lines += [
        f"subtomograms: {len(data)} of {data.size}^3{halves}, crops of {data.crop_size}^3, "
        f"mask threshold {cfg.mask_threshold:g}",
        f"normalisation: mean {norm.mean:.6g}, std {norm.std:.6g}",
    ]
    lines += t.method.describe()
    return lines


def describe_end(
    t: Trainer, stopped_by: str | None, session_s: float, losses: tuple[list[str], list[list[str]]]
) -> list[str]:
    """The lines that close a session: how it ended, its timings and its final losses
    (``losses``: the header and rows of ``losses.csv``)."""
    if stopped_by is None:
        how = "finished"
    else:
        how = f"stopped by {stopped_by} (resume to continue)"
    per_step = t.elapsed / t.step if t.step else math.nan
    lines = [
        f"{how} at step {t.step}: {t.elapsed / 60:.2f} min of training in all "
        f"({per_step:.3g} s/step); this session took {session_s / 60:.2f} min",
    ]
    header, rows = losses
    if rows:
        tail = rows[-max(1, len(rows) // 20) :]
        mean = {}
        for j, name in enumerate(header):
            vals = [float(r[j]) for r in tail if j < len(r) and r[j].strip()]
            if vals:
                mean[name] = sum(vals) / len(vals)
        lines.append(f"final losses (mean of the last {len(tail)} rows): {losses_text(mean)}")
    return lines


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cryogen-et")
    except Exception:
        return "unknown"
