"""Per-stream credits: a sender waits for grants, a receiver grants in halves of the window."""

import asyncio

import pytest

from inference_club.protocol import ReceiveWindow, SendWindow, WindowClosed


async def test_sender_waits_for_credit_and_resumes_on_grant() -> None:
    """Spending past the window blocks until the peer grants more."""
    window = SendWindow(100)
    await window.acquire(60)
    blocked = asyncio.create_task(window.acquire(60))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    window.grant(30)
    await asyncio.wait_for(blocked, 1)
    assert window.credit == 10


async def test_closing_fails_a_waiting_sender() -> None:
    """A stream that ends wakes its sender with WindowClosed, a ConnectionError."""
    window = SendWindow(0)
    waiting = asyncio.create_task(window.acquire(1))
    await asyncio.sleep(0.01)
    window.close()
    with pytest.raises(WindowClosed):
        await waiting
    assert issubclass(WindowClosed, ConnectionError)


def test_receiver_grants_in_halves() -> None:
    """Grants are batched until half the window was consumed."""
    window = ReceiveWindow(100)
    assert window.consumed(30) == 0
    assert window.consumed(25) == 55
    assert window.consumed(10) == 0
    assert window.consumed(40) == 50


def test_try_spend_takes_credit_only_when_there_is_enough_and_the_window_is_open() -> None:
    window = SendWindow(10)
    assert window.try_spend(6)
    assert not window.try_spend(5)
    assert window.credit == 4
    assert window.try_spend(4)
    window.grant(3)
    window.close()
    assert not window.try_spend(1)
    assert window.credit == 3
