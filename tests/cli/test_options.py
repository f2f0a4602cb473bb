"""The shared options and the registration of the commands: choices from the registries,
``--set`` parsing, library parameter names turned into flags, the order of ``--help``."""

import importlib

import pytest

from cryogen.cli import app
from cryogen.cli.app import user_message
from cryogen.cli.options import PhantomName, check_beam_axis, parse_set_options
from cryogen.errors import InputError, OutputError
from cryogen.phantoms import PHANTOM_NAMES

HELP_ORDER = [
    "phantom", "corrupt", "evaluate", "show", "train", "predict", "simulate", "reconstruct",
    "prepare", "deconv", "make-mask", "benchmark", "demo",
]  # fmt: skip


def test_commands_are_registered_in_the_help_order():
    assert [c.name for c in app.registered_commands] == HELP_ORDER


def test_every_command_is_a_module_level_function_of_its_module():
    for info in app.registered_commands:
        func = info.callback.__wrapped__  # under user_errors
        module = importlib.import_module(func.__module__)
        assert func.__module__.startswith("cryogen.cli.commands.")
        assert getattr(module, func.__name__) is func


def test_phantom_choices_are_the_registry():
    assert [p.value for p in PhantomName] == list(PHANTOM_NAMES)


def test_set_values_are_json_or_strings():
    assert parse_set_options(None) == {}
    got = parse_set_options(["adv_weight=0.01", "features=[8,16]", "adv-loss=bce", "x= 1"])
    assert got == {"adv_weight": 0.01, "features": [8, 16], "adv_loss": "bce", "x": 1}
    with pytest.raises(InputError, match="--set expects KEY=VALUE, got 'foo'"):
        parse_set_options(["foo"])


def test_beam_axis_check():
    assert check_beam_axis("y") == "y"
    with pytest.raises(InputError, match="--beam-axis must be 'z' or 'y', got 'x'"):
        check_beam_axis("x")


@pytest.mark.parametrize(
    "message, shown",
    [
        ("defocus_um 60 µm is not a plausible defocus", "--defocus 60 µm is not a plausible"),
        (
            "give either bin_factor or target_pixel_size, not both",
            "give either --bin or --target-pixel-size, not both",
        ),
        ("tilt_min (60) must be smaller", "--tilt-min (60) must be smaller"),
        ("a.mrc: give the defocus with defocus_um (µm)", "give the defocus with --defocus (µm)"),
    ],
)
def test_library_parameter_names_become_flags(message, shown):
    assert shown in user_message(InputError(message))


def test_advice_is_appended():
    text = user_message(OutputError("out.mrc already exists", advice="overwrite"))
    assert text == "out.mrc already exists; use --overwrite to replace it"


def test_a_training_setting_in_an_error_is_shown_as_set():
    """A setting without a flag of its own (``mask_threshold``) reaches the user as
    ``--set mask_threshold``; settings that have a flag keep the flag."""
    msg = user_message(InputError("lower mask_threshold or n_subtomos; tilt_min is wrong"))
    assert "--set mask_threshold" in msg and "--set n_subtomos" in msg
    assert "--tilt-min is wrong" in msg and "--set tilt_min" not in msg
