"""Fault injection: run the command line the way a careful user breaks it, and check that
nothing is lost.

Each case runs ``cryogen`` in a subprocess on tiny data and then checks what a user would
check: a one-line error (no traceback) saying what happened, the inputs untouched, no
temporary file left, the previous checkpoint kept and the run resumable.  The cases: a full
disk during ``predict``, ``corrupt``, ``simulate``, ``reconstruct`` and training (at the
start and in the middle of a run), two trainings or a training and a resume in one run
folder, two predictions to one output, ``SIGTERM`` during training and prediction, the
temporary file of a killed run, an output that is an input (through a link too) in eight
commands, a damaged ``losses.csv`` on resume, a checkpoint with NaN weights, bad values,
a failed start, and the resume of a finished run.

The full-disk cases mount a 2 MiB tmpfs (root only; elsewhere they are reported as
skipped).  It prints one line per case and ``N tried, N handled``.

Example (a few minutes on one core)::

    OMP_NUM_THREADS=1 python benchmarks/fault_injection.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TINY = [
    *("--set", "features=[4,8]", "--set", "subtomo_size=20", "--set", "crop_size=16"),
    *("--set", "n_subtomos=2", "--quiet", "--tilt-min", "-60", "--tilt-max", "60"),
]
TILES = ("--tile", "16", "--overlap", "8")
#: ``check(what, problem)``: one injected fault; a falsy ``problem`` means handled.
Check = Callable[[str, object], None]
CASES: list[tuple[str, Callable[[Path, Check], None]]] = []


def case(name: str) -> Callable[[Callable[[Path, Check], None]], Callable[[Path, Check], None]]:
    """Register a group of faults; it raises ``Skip`` where it cannot run here."""

    def add(func: Callable[[Path, Check], None]) -> Callable[[Path, Check], None]:
        CASES.append((name, func))
        return func

    return add


class Skip(Exception):
    pass


# ------------------------------------------------------------------------------ helpers
def cryogen(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryogen", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def start(*args: object, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cryogen", *map(str, args)],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str | None:
    """``None`` when the command failed with one line holding every needle."""
    text = " ".join((done.stdout + done.stderr).split())
    if done.returncode in (0, 135) or "Traceback" in done.stderr:
        return f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    missing = [n for n in needles if n not in text]
    return f"no {missing} in: {text[-300:]}" if missing else None


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "2M") -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (raises ``Skip`` where mounting is not allowed)."""
    where.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    if done.returncode != 0:
        raise Skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` up to ``leave`` free bytes."""
    free = shutil.disk_usage(disk).free - leave
    with contextlib.suppress(OSError), (disk / "filler").open("wb") as fh:
        fh.write(b"\0" * max(0, free))


def trained(work: Path, name: str, steps: int = 3, *extra: object) -> Path:
    run = work / name
    done = cryogen("train", "in.mrc", "-o", run, "--steps", steps, *TINY, *extra, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return run


def step_of(run: Path) -> int:
    import torch

    return int(torch.load(run / "last.pt", weights_only=True)["step"])


# ------------------------------------------------------------------------------ full disks
@case("full disk")
def _full_disk(work: Path, check: Check) -> None:
    with tmpfs(work / "disk") as disk:
        for args in (
            ("predict", "model", "big.mrc", "-o", disk / "p.mrc", *TILES),
            ("corrupt", "big.mrc", "-o", disk / "c.mrc"),
            ("simulate", "big.mrc", "-o", disk / "ts.mrc", "--tilt-step", "2"),
            ("reconstruct", "ts.mrc", "-o", disk / "r.mrc", "--thickness", "100000"),
        ):
            problem = one_line_error(cryogen(*args, cwd=work), "no space left on", "need", "have")
            check(f"{args[0]} on a full disk", problem or temporary_files(disk) or None)
        fill(disk, leave=20_000)
        done = cryogen("train", "in.mrc", "-o", disk / "run", "--steps", 3, *TINY, cwd=work)
        problem = one_line_error(done, "no space left")
        check("train on a full disk: no run folder left", problem or (disk / "run").exists())


@case("disk filled during a training")
def _train_full_midway(work: Path, check: Check) -> None:
    with tmpfs(work / "disk", "4M") as disk:
        run = disk / "run"
        p = start(
            "train",
            "in.mrc",
            "-o",
            run,
            "--steps",
            100000,
            "--set",
            "checkpoint_every=20",
            *TINY,
            cwd=work,
        )
        if not wait_for(lambda: (run / "checkpoints").is_dir() or p.poll() is not None):
            p.kill()
        fill(disk)
        _, err = p.communicate(timeout=300)
        bad = p.returncode == 0 or "Traceback" in err or "no space left" not in err
        check("a checkpoint on a full disk: one-line error", bad and err.strip()[-300:])
        step = step_of(run)
        (disk / "filler").unlink()
        done = cryogen(
            "train", "in.mrc", "-o", run, "--steps", step + 5, "--resume", *TINY, cwd=work
        )
        ok = done.returncode == 0 and step_of(run) == step + 5 and not temporary_files(disk)
        check("... the previous checkpoint kept and the run resumed", not ok and done.stderr)


# ------------------------------------------------------------------------------ concurrency
@case("two trainings in one run folder")
def _two_trainings(work: Path, check: Check) -> None:
    run = work / "busy"
    p = start("train", "in.mrc", "-o", run, "--steps", 100000, *TINY, cwd=work)
    try:
        wait_for(lambda: (run / "losses.csv").exists() or p.poll() is not None)
        for extra in ("--overwrite", "--resume"):
            done = cryogen("train", "in.mrc", "-o", run, "--steps", 5, *TINY, extra, cwd=work)
            problem = one_line_error(done, "another training is using this run folder")
            check(f"a second training ({extra}) while one runs", problem)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    check("... the first one unharmed", step_of(run) == 0)


@case("two predictions to one output")
def _two_predictions(work: Path, check: Check) -> None:
    p = start("predict", "model", "big.mrc", "-o", "twice.mrc", *TILES, cwd=work)
    try:
        wait_for(lambda: bool(temporary_files(work)) or p.poll() is not None)
        done = cryogen(
            "predict", "model", "big.mrc", "-o", "twice.mrc", *TILES, "--overwrite", cwd=work
        )
        problem = one_line_error(done, "another process", "is writing it now")
        check(
            "a second prediction to one output, refused before computing",
            problem or (p.poll() is not None and "the first one had finished"),
        )
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)


# ------------------------------------------------------------------------------ signals
@case("signals")
def _signals(work: Path, check: Check) -> None:
    run = work / "term"
    p = start("train", "in.mrc", "-o", run, "--steps", 100000, *TINY, cwd=work)
    wait_for(
        lambda: (
            (run / "losses.csv").exists()
            and (run / "losses.csv").stat().st_size > 300
            or p.poll() is not None
        )
    )
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    step = step_of(run) if (run / "last.pt").exists() else 0
    check(
        "SIGTERM during training: a checkpoint, then exit",
        (p.returncode != 130 or not step) and f"exit {p.returncode}: {err.strip()[-300:]}",
    )
    done = cryogen("train", "in.mrc", "-o", run, "--steps", step + 2, "--resume", *TINY, cwd=work)
    check("... and the run resumes", (done.returncode or step_of(run) != step + 2) and done.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        p = start("predict", "model", "big.mrc", "-o", "sig.mrc", *TILES, "--overwrite", cwd=work)
        wait_for(lambda: bool(temporary_files(work)) or p.poll() is not None)  # noqa: B023
        p.send_signal(sig)
        p.wait(timeout=120)
        if sig == signal.SIGTERM:
            left = temporary_files(work)
            check(
                "SIGTERM during prediction: exit 143, no temporary file",
                (p.returncode != 143 or left) and f"exit {p.returncode}, left {left}",
            )
    left = temporary_files(work)
    done = cryogen("corrupt", "big.mrc", "-o", "sig.mrc", "--overwrite", cwd=work)
    check(
        "the temporary file of a SIGKILLed run: removed at the next write",
        (len(left) != 1 or done.returncode or temporary_files(work)) and f"{left} {done.stderr}",
    )


# ------------------------------------------------------------------------------ output = input
@case("output = input")
def _output_is_input(work: Path, check: Check) -> None:
    link = work / "link.mrc"
    link.symlink_to(work / "in.mrc")
    before = (work / "in.mrc").read_bytes(), (work / "ts.mrc").read_bytes()
    commands = [
        ("prepare", "in.mrc", "-o", link),
        ("evaluate", "in.mrc", "--truth", "gt.mrc", "--json", link),
        ("make-mask", "in.mrc", "-o", link),
        ("reconstruct", "ts.mrc", "-o", "ts.mrc"),
        ("corrupt", "in.mrc", "-o", link),
        ("predict", "model", "in.mrc", "-o", link, *TILES),
        ("deconv", "in.mrc", "-o", link, "--defocus", "2"),
        ("simulate", "in.mrc", "-o", link),
    ]
    for args in commands:
        problem = one_line_error(cryogen(*args, "--overwrite", cwd=work), "is an input")
        check(f"{args[0]} --overwrite with its input as the output", problem)
    after = (work / "in.mrc").read_bytes(), (work / "ts.mrc").read_bytes()
    check("... the inputs untouched", after != before)


# ------------------------------------------------------------------------------ runs
@case("runs")
def _runs(work: Path, check: Check) -> None:
    import torch

    for name, text in (("an empty", ""), ("a garbled", "\0\0garbage\n3,x\n")):
        run = trained(work, "damaged", 3, "--overwrite")
        (run / "losses.csv").write_text(text)
        done = cryogen("train", "in.mrc", "-o", run, "--steps", 5, "--resume", *TINY, cwd=work)
        bad = done.returncode or "damaged" not in done.stderr or step_of(run) != 5
        check(f"resume with {name} losses.csv", bad and done.stderr.strip()[-300:])
    run = trained(work, "nan", 2)
    state = torch.load(run / "last.pt", weights_only=True)
    for k, v in state["generator"].items():
        state["generator"][k] = torch.full_like(v, float("nan")) if v.is_floating_point() else v
    torch.save(state, run / "last.pt")
    done = cryogen("predict", run, "in.mrc", "-o", "nan.mrc", *TILES, cwd=work)
    check(
        "predict with NaN weights",
        one_line_error(done, "NaN or Inf") or (work / "nan.mrc").exists(),
    )
    done = cryogen("train", "in.mrc", "-o", run, "--steps", 4, "--resume", *TINY, cwd=work)
    check("resume with NaN weights", one_line_error(done, "NaN or Inf"))
    done = cryogen(
        "train",
        "in.mrc",
        "-o",
        "failed",
        "--steps",
        3,
        *TINY,
        "--set",
        "crop_size=48",
        "--set",
        "subtomo_size=48",
        cwd=work,
    )
    problem = one_line_error(done, "smaller than the training crop")
    check("a failed start leaves no run folder", problem or (work / "failed").exists())
    run = trained(work, "finished", 2)
    done = cryogen("train", "in.mrc", "-o", run, "--resume", *TINY, "--steps", 2, cwd=work)
    check("resume of a finished run", one_line_error(done, "the run is finished", "--steps"))


@case("bad values")
def _bad_values(work: Path, check: Check) -> None:
    for lo, hi in (("70", "60"), ("10", "10"), ("nan", "60"), ("-100", "60")):
        for cmd in (
            ("corrupt", "in.mrc", "-o", "bad.mrc"),
            ("evaluate", "in.mrc", "--truth", "gt.mrc"),
        ):
            done = cryogen(*cmd, "--tilt-min", lo, "--tilt-max", hi, cwd=work)
            check(f"{cmd[0]} --tilt-min {lo} --tilt-max {hi}", one_line_error(done, "--tilt-min"))
    for args, needle in (
        (("phantom", "prism", "-o", "p.mrc", "--seed", "-1"), "--seed"),
        (("make-mask", "in.mrc", "-o", "m.mrc", "--patch-size", "1000"), "--patch-size"),
    ):
        check(" ".join(args[:1] + args[-2:]), one_line_error(cryogen(*args, cwd=work), needle))


# ------------------------------------------------------------------------------ main
def prepare(work: Path) -> None:
    for args in (
        ("phantom", "sphere", "-o", "gt.mrc", "--size", 32),
        ("corrupt", "gt.mrc", "-o", "in.mrc"),
        ("phantom", "sphere", "-o", "big.mrc", "--size", 96),
        ("simulate", "in.mrc", "-o", "ts.mrc", "--tilt-step", 10),
    ):
        done = cryogen(*args, cwd=work)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    trained(work, "model", 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cryogen-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(work)
    results: list[bool] = []
    skipped = []

    def check(what: str, problem: object) -> None:
        results.append(not problem)
        detail = "" if not problem else f": {problem}"
        print(f"{'handled' if not problem else 'FAILED '}  {what}{detail}", flush=True)

    for name, func in CASES:
        try:
            func(work, check)
        except Skip as why:
            skipped.append(name)
            print(f"skipped  {name}: {why}", flush=True)
        except Exception as exc:  # a crash of a case is a failure, not the script's end
            check(f"{name} (crashed)", f"{type(exc).__name__}: {exc}")
    note = f" ({', '.join(skipped)} skipped)" if skipped else ""
    print(f"{len(results)} tried, {sum(results)} handled{note}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
