"""Tunnels' long-lived objects are frozen as tunnels join; what leaving ones left in cycles
is reclaimed once enough have left."""

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from inference_club.gateway.tunnel_heap import TunnelHeap


class FakeTunnelState:
    """Stands for what a tunnel keeps alive: objects that refer to each other."""

    def __init__(self) -> None:
        self.myself = self
        self.buffers = [bytearray(16) for _ in range(4)]


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    gc.collect()
    frozen = gc.get_freeze_count()
    yield
    gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()


def test_nothing_is_frozen_below_the_minimum() -> None:
    heap = TunnelHeap(minimum=10)
    before = gc.get_freeze_count()

    for _ in range(9):
        heap.joined()

    assert gc.get_freeze_count() == before


def test_the_heap_is_frozen_when_enough_tunnels_joined() -> None:
    """Ten tunnels past a minimum of ten freeze what is alive, and full passes skip it."""
    heap = TunnelHeap(minimum=10, growth=0.1)
    states = [FakeTunnelState() for _ in range(10)]
    before = gc.get_freeze_count()

    for _ in range(len(states)):
        heap.joined()

    assert gc.get_freeze_count() > before
    # Frozen objects are out of every generation the collector walks.
    walked = {id(thing) for thing in gc.get_objects()}
    assert not any(id(state) in walked for state in states)


class PlainTunnelState:
    """What a tunnel keeps alive when it leaves no cycle: freed as soon as it is dropped."""

    def __init__(self) -> None:
        self.buffers = [bytearray(16) for _ in range(4)]


async def test_cycles_left_by_departed_tunnels_are_reclaimed_once_departures_settle() -> None:
    """A frozen tunnel that leaves in a reference cycle outlives ordinary collections; once a
    quarter of the tunnels have left and no more leave for a while, it is freed."""
    heap = TunnelHeap(minimum=4, growth=0.1, turnover=0.25, settle=0.05)
    states = [FakeTunnelState() for _ in range(16)]
    alive = [weakref.ref(state) for state in states]
    for _ in range(len(states)):
        heap.joined()
    leaving = states[:5]
    del states

    for index in range(3):
        heap.left(leaving[index])
    await asyncio.sleep(0.1)
    gc.collect()
    assert all(ref() is not None for ref in alive)  # frozen: the collector does not see them

    heap.left(leaving[3])  # the fourth of sixteen: a collection waits for departures to settle
    await asyncio.sleep(0.03)
    heap.left(leaving[4])  # another one leaves meanwhile and the wait starts over
    del leaving
    await asyncio.sleep(0.03)
    assert all(ref() is not None for ref in alive)
    await asyncio.sleep(0.1)

    assert all(ref() is None for ref in alive)
    assert heap.live == 11
    heap.close()


async def test_no_full_collection_when_every_departed_tunnel_was_freed() -> None:
    """Departed tunnels whose objects all went with them leave nothing to reclaim: the full
    collection, which walks the whole heap, does not run. A frozen cycle unrelated to them
    shows it: only that collection would free it."""
    heap = TunnelHeap(minimum=4, growth=0.1, turnover=0.25, settle=0.05)
    states = [PlainTunnelState() for _ in range(16)]
    unrelated = FakeTunnelState()
    unrelated_alive = weakref.ref(unrelated)
    for _ in range(len(states)):
        heap.joined()
    del unrelated  # frozen, and now garbage in a cycle

    for _ in range(4):
        heap.left(states.pop())  # dropped at once: nothing holds a departed tunnel
    await asyncio.sleep(0.15)

    assert unrelated_alive() is not None
    heap.close()


async def test_a_tunnel_that_names_nothing_still_leads_to_a_collection() -> None:
    """Whether a tunnel that named none of its objects was freed cannot be told: collect."""
    heap = TunnelHeap(minimum=4, growth=0.1, turnover=0.25, settle=0.05)
    unrelated = FakeTunnelState()
    unrelated_alive = weakref.ref(unrelated)
    for _ in range(16):
        heap.joined()
    del unrelated

    for _ in range(4):
        heap.left()
    await asyncio.sleep(0.15)

    assert unrelated_alive() is None
    heap.close()
