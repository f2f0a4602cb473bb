"""The ``cryogen`` command line: the Typer app, its one-line errors, and its commands.

The commands are plain functions in :mod:`cryogen.cli.commands` (one module per command or
family), registered here in the order ``cryogen --help`` lists them.  A ``CryogenError``
(and common OS errors) raised by a command is printed as one line in the command line's
terms (:func:`user_message`) and exits with code 1.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console

from cryogen.cli.options import ADVICE, FLAGS
from cryogen.errors import CryogenError

__all__ = ["app", "main", "register", "user_errors", "user_message"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="CryoGEN-ET: restore the missing wedge of cryo-electron tomograms.",
)
err_console = Console(stderr=True)


def _flags_take_no_value() -> None:
    """Help shows no value type for a flag (Typer shows ``<bool>``, which reads as if
    ``--overwrite true`` were expected)."""
    option_class: Any = getattr(typer.core, "TyperOption", None)
    shown = getattr(option_class, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_take_no_value", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.flags_take_no_value = True  # type: ignore[attr-defined]
    option_class.display_type_rich = display_type_rich


_flags_take_no_value()

F = TypeVar("F", bound=Callable[..., Any])


def _as_flags(text: str, names: dict[str, str]) -> str:
    """Every whole-word occurrence of a key of ``names`` in ``text`` replaced by its value."""
    if not names:
        return text
    pattern = r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])"
    return re.sub(pattern, lambda m: names[m.group(1)], text)


def _setting_flags() -> dict[str, str]:
    """Training settings that have no flag of their own, as ``--set NAME``."""
    from cryogen.train import TrainConfig

    return {n: f"--set {n}" for n in TrainConfig.model_fields if "_" in n and n not in FLAGS}


def user_message(exc: BaseException) -> str:
    """An error's message in the command line's terms: parameter names become flags
    (``tilt_min`` -> ``--tilt-min``, a training setting ``mask_threshold`` -> ``--set
    mask_threshold``) and its ``advice`` is added."""
    text = _as_flags(str(exc), {n: f for n, f in FLAGS.items() if "_" in n})
    if "_" in text:
        text = _as_flags(text, _setting_flags())
    advice = ADVICE.get(getattr(exc, "advice", None) or "")
    return f"{text}; {advice}" if advice else text


def user_errors(func: F) -> F:
    """Print a ``CryogenError`` (and common OS errors) as one line and exit with code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CryogenError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            message = user_message(exc)
        except OSError as exc:  # a full disk, a vanished file system...
            message = user_message(_os_error(exc))
        except ValueError as exc:  # a value the command did not check itself
            if logging.getLogger("cryogen").isEnabledFor(logging.INFO):  # --verbose
                logging.getLogger(__name__).exception("the error's traceback:")
            message = user_message(exc)
        err_console.print(
            f"[bold red]error:[/] {' '.join(message.split())}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _os_error(exc: OSError) -> CryogenError:
    """An ``OSError`` the library did not turn into a ``CryogenError``, as one line naming
    the file (and, for a full disk, the device and its free space)."""
    import errno
    from pathlib import Path

    from cryogen.io.files import write_error

    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is not None:
        return write_error(Path(str(exc.filename)), exc)
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return CryogenError(f"{where}{exc.strerror or exc}")


_TERMINATED = False


def _on_sigterm(signum: int, frame: Any) -> None:
    """``SIGTERM`` (Slurm's time limit, ``timeout``, ``docker stop``) ends a command the way
    Ctrl-C does: Python unwinds, so temporary files are deleted and a training writes its
    checkpoint first (the training loop installs its own handler for that)."""
    global _TERMINATED
    _TERMINATED = True
    raise SystemExit(128 + signum)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if "RANK" in os.environ:  # under torchrun, log messages come once, from rank 0
        from cryogen.distributed import silence_other_ranks

        silence_other_ranks()


def register(name: str, func: Callable[..., Any], **kwargs: Any) -> None:
    """Add ``func`` to ``app`` as the command ``name``, its errors printed as one line."""
    app.command(name, **kwargs)(user_errors(func))


def _register_commands() -> None:
    """Every command, in the order ``cryogen --help`` lists them (one line each)."""
    from cryogen.cli.commands import (
        benchmark,
        corrupt,
        deconv,
        evaluate,
        masks,
        phantom,
        predict,
        prepare,
        reconstruct,
        show,
        simulate,
        train,
    )
    from cryogen.cli.pairs import PairCommand

    register("phantom", phantom.phantom)
    register("corrupt", corrupt.corrupt)
    register("evaluate", evaluate.evaluate)
    register("show", show.show)
    register("train", train.train, cls=PairCommand)
    register("predict", predict.predict, help=predict.HELP, cls=PairCommand)
    register("simulate", simulate.simulate)
    register("reconstruct", reconstruct.reconstruct)
    register("prepare", prepare.prepare, cls=PairCommand)
    register("deconv", deconv.deconv)
    register("make-mask", masks.make_mask)
    register("benchmark", benchmark.benchmark)
    register("demo", benchmark.demo)


_register_commands()


def main() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        if _TERMINATED:
            err_console.print("terminated (SIGTERM); temporary files removed")
        raise
