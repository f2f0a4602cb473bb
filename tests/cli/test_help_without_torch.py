"""``cryogen --help`` (and each command's help) starts without loading PyTorch; the values
spelled out for that agree with the library's."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from typer.testing import CliRunner
from cryogen.cli import app
for args in (["--help"], ["train", "--help"], ["prepare", "--help"], ["phantom", "--help"]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
print("torch" in sys.modules)
"""


def test_help_does_not_load_torch():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_spelled_out_choices_agree_with_the_library():
    from cryogen.cli.commands.benchmark import Wedge
    from cryogen.cli.options import DEFAULT_AMPLITUDE_CONTRAST, DEFAULT_CS, DEFAULT_VOLTAGE
    from cryogen.corrupt import WEDGES
    from cryogen.tomo import CTFParams

    defaults = CTFParams(defocus=0.0)
    assert (DEFAULT_VOLTAGE, DEFAULT_CS, DEFAULT_AMPLITUDE_CONTRAST) == (
        defaults.voltage,
        defaults.cs,
        defaults.amplitude_contrast,
    )
    assert [w.value for w in Wedge] == list(WEDGES)
