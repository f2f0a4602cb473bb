"""The registry of logged terms and the adversarial losses."""

import math

import torch

from cryogen.train import LOSS_COLUMNS, SHOWN_TERMS, discriminator_loss, generator_adv_loss
from cryogen.train.losses import COLUMNS, RANK_MEANS


def test_every_list_of_terms_derives_from_the_registry():
    assert LOSS_COLUMNS == tuple(c.name for c in COLUMNS)
    assert LOSS_COLUMNS[:4] == ("step", "elapsed_s", "progress", "lr")
    assert SHOWN_TERMS == (
        ("loss", "loss"),
        ("data", "data"),
        ("consistency", "cons"),
        ("adv_g", "adv"),
        ("d_loss", "D"),
    )
    # the clock and the learning rate are equal on every rank; the rest is averaged
    assert RANK_MEANS == LOSS_COLUMNS[4:]


def test_adversarial_losses_at_known_scores():
    zero, one = torch.zeros(4), torch.ones(4)
    # bce: an undecided E (scores 0) costs log 2 per term; the generator's loss is the
    # non-saturating one, -log sigmoid(s_fake)
    assert math.isclose(float(discriminator_loss("bce", zero, zero)), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(generator_adv_loss("bce", zero)), math.log(2), rel_tol=1e-6)
    assert math.isclose(
        float(generator_adv_loss("bce", one)), math.log1p(math.exp(-1.0)), rel_tol=1e-6
    )
    # hinge: zero once reals score >= 1 and fakes <= -1
    assert float(discriminator_loss("hinge", one, -one)) == 0.0
    assert float(discriminator_loss("hinge", zero, zero)) == 2.0
    # wgan-gp critic: the difference of the mean scores
    assert float(discriminator_loss("wgan-gp", 3 * one, one)) == -2.0
    assert float(generator_adv_loss("wgan-gp", 2 * one)) == -2.0
