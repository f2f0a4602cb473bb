"""IMOD ``.tlt`` files: exact round trips and one-line errors naming the line."""

from __future__ import annotations

import numpy as np
import pytest

from cryogen.errors import InputError, OutputError
from cryogen.io import read_tlt, write_tlt


def test_tlt_round_trip_is_exact(tmp_path):
    angles = np.array([-60.0, -57.03, -0.0, 0.1 + 0.2, 1e-5, 58.5, 62.0])
    path = write_tlt(tmp_path / "TS_01.bin4.tlt", angles)
    back = read_tlt(path)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, angles)
    with pytest.raises(OutputError, match="already exists"):
        write_tlt(path, angles)
    write_tlt(path, angles[:2], overwrite=True)
    np.testing.assert_array_equal(read_tlt(path), angles[:2])


def test_tlt_imod_format_blank_lines(tmp_path):
    path = tmp_path / "a.tlt"
    path.write_text("  -54.00\n\n  -51.00\r\n   0.00\n  62.00\n\n")
    np.testing.assert_array_equal(read_tlt(path), [-54.0, -51.0, 0.0, 62.0])


@pytest.mark.parametrize(
    "text, needles",
    [
        ("-60\n-57\nabc\n", ["line 3", "abc"]),
        ("-60\n\n-57 -54\n", ["line 3"]),
        ("-60\n95\n", ["line 2", "[-90, 90]"]),
        ("-60\nnan\n", ["line 2"]),
        ("\n\n  \n", ["no tilt angles"]),
        ("", ["no tilt angles"]),
    ],
)
def test_tlt_bad_input(tmp_path, text, needles, one_line_error):
    path = tmp_path / "bad.tlt"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        read_tlt(path)
    one_line_error(e, path, *needles)


def test_tlt_missing_and_binary(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_tlt(tmp_path / "none.tlt")
    (tmp_path / "b.tlt").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InputError, match="b.tlt"):
        read_tlt(tmp_path / "b.tlt")
