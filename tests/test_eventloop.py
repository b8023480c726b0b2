"""The interpreter setting long-running processes start with."""

import sys

import pytest

from inference_club.eventloop import GIL_SWITCH_INTERVAL, shorten_gil_waits


@pytest.fixture
def restored_switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored_switch_interval")
def test_helper_threads_hand_the_gil_back_within_half_a_millisecond() -> None:
    sys.setswitchinterval(0.005)  # CPython's default

    shorten_gil_waits()

    assert GIL_SWITCH_INTERVAL == 0.0005
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)
