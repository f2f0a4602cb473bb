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
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
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
            err_console.print(
                f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


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
        corrupt,
        deconv,
        evaluate,
        masks,
        phantom,
        prepare,
        reconstruct,
        show,
        simulate,
        train,
    )

    register("phantom", phantom.phantom)
    register("corrupt", corrupt.corrupt)
    register("evaluate", evaluate.evaluate)
    register("show", show.show)
    register("train", train.train)
    # -- predict: begin
    from cryogen.cli.commands import predict

    register("predict", predict.predict, help=predict.HELP)
    # -- predict: end
    register("simulate", simulate.simulate)
    register("reconstruct", reconstruct.reconstruct)
    register("prepare", prepare.prepare)
    register("deconv", deconv.deconv)
    register("make-mask", masks.make_mask)
    # -- benchmark: begin
    from cryogen.cli.commands import benchmark

    register("benchmark", benchmark.benchmark)
    register("demo", benchmark.demo)
    # -- benchmark: end


_register_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("interrupted")
        sys.exit(130)
