"""Options that take two values and repeat: ``--halves EVEN ODD [--halves EVEN ODD ...]``.

Typer's options take one value each; :class:`PairCommand` splits each ``--halves A B`` into
``--halves A --halves B`` before parsing, and :func:`pairs` joins the values again.  A
command that has such an option is registered with ``cls=PairCommand``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from cryogen.errors import InputError

__all__ = ["HALVES_FLAG", "PairCommand", "halves_option", "pairs", "split_pairs"]

HALVES_FLAG = "--halves"


def halves_option(help: str) -> Any:
    """``--halves EVEN ODD``, repeatable, with a command's help."""
    return typer.Option(HALVES_FLAG, metavar="EVEN ODD", help=help, show_default=False)


def split_pairs(args: Sequence[str], flag: str = HALVES_FLAG) -> list[str]:
    """``[flag, A, B]`` -> ``[flag, A, flag, B]`` wherever ``flag`` is followed by two
    values (an incomplete pair is left for :func:`pairs` to refuse)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        pair = list(args[i + 1 : i + 3])
        if args[i] == flag and len(pair) == 2 and not any(a.startswith("-") for a in pair):
            out += [flag, pair[0], flag, pair[1]]
            i += 3
        else:
            out.append(args[i])
            i += 1
    return out


class PairCommand(TyperCommand):
    """A command whose ``--halves`` takes two files (split by :func:`split_pairs`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, split_pairs(args))


def pairs(values: Sequence[Path] | None) -> list[tuple[Path, Path]] | None:
    """The ``--halves`` values as ``(even, odd)`` pairs (``None`` without any)."""
    if not values:
        return None
    if len(values) % 2:
        raise InputError(f"{HALVES_FLAG} takes two files, the even and the odd half-set: EVEN ODD")
    return [(Path(values[i]), Path(values[i + 1])) for i in range(0, len(values), 2)]
