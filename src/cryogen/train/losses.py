"""The quantities a training run logs, in one registry, and the adversarial losses.

``COLUMNS`` lists every column of ``losses.csv`` in order.  The header
(:data:`LOSS_COLUMNS`), the terms a progress bar, ``losses.png`` and the command line's
summary show (:data:`SHOWN_TERMS`), and the values averaged over the ranks of a
distributed run (:data:`RANK_MEANS`) all derive from it: a new loss term is one entry
here plus the code that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "COLUMNS",
    "LOSS_COLUMNS",
    "RANK_MEANS",
    "SHOWN_TERMS",
    "Column",
    "discriminator_loss",
    "generator_adv_loss",
]


@dataclass(frozen=True)
class Column:
    """One column of ``losses.csv``.

    Attributes
    ----------
    name
        The header and the key in a step's row.
    description
        What it holds.
    label
        Short label where the term is shown (progress bar, ``losses.png``, summaries);
        ``None``: logged only.
    rank_mean
        Computed by every rank from its own batch, logged as the mean over the ranks
        (``False``: the step's clock and learning rate, equal on every rank).
    """

    name: str
    description: str
    label: str | None = None
    rank_mean: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("step", "steps done", rank_mean=False),
    Column("elapsed_s", "training time so far, seconds", rank_mean=False),
    Column("progress", "fraction of the budget at the start of the step", rank_mean=False),
    Column("lr", "generator learning rate", rank_mean=False),
    Column("lambda", "weight of the consistency term"),
    Column("adv_weight", "weight of the energy term (ramp included)"),
    Column("loss", "the generator's objective", "loss"),
    Column("data", "data term, mse(T_M x, T_M y)", "data"),
    Column("consistency", "consistency term, mse(R^-1 g(T_M(R t + eps)), t)", "cons"),
    Column("adv_g", "the generator's adversarial (energy) term", "adv"),
    Column("d_loss", "the energy model's loss", "D"),
    Column("d_real", "mean score of real samples"),
    Column("d_fake", "mean score of fakes"),
    Column("penalty", "the energy model's gradient penalty (R1, wgan-gp)"),
    Column("round", "refill round"),
    Column("noise", "noise level of the consistency input"),
    Column("grad_norm", "norm of g's gradient before clipping (blank: update skipped)"),
)

#: The header of ``losses.csv``.
LOSS_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: ``(name, short label)`` of the terms a progress bar, ``losses.png`` and summaries show.
SHOWN_TERMS: tuple[tuple[str, str], ...] = tuple(
    (c.name, c.label) for c in COLUMNS if c.label is not None
)
#: The columns logged as the mean over the ranks of a distributed run.
RANK_MEANS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.rank_mean)


def discriminator_loss(kind: str, s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
    """The energy model's loss on scores ``s = -E(x)`` (high = real).

    ``kind``: ``"bce"`` (the paper's binary cross-entropy), ``"hinge"``, or ``"wgan-gp"``
    (the critic's loss; its gradient penalty is added by the caller).
    """
    if kind == "bce":
        return F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - s_real).mean() + F.relu(1.0 + s_fake).mean()
    return s_fake.mean() - s_real.mean()  # wgan-gp critic


def generator_adv_loss(kind: str, s_fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss on the scores of its fakes (non-saturating for bce)."""
    if kind == "bce":
        return F.softplus(-s_fake).mean()
    return -s_fake.mean()
