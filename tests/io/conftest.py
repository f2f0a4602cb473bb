"""Fixtures of the I/O tests."""

import pytest


def _one_line_error(excinfo, *needles):
    """The raised error's message: one line that holds every needle."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert str(needle) in msg, msg
    return msg


@pytest.fixture()
def one_line_error():
    """``one_line_error(excinfo, *needles)``: assert the message is one line with the needles."""
    return _one_line_error
