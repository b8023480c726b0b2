"""The shared heartbeat loop survives any one tunnel failing."""

import asyncio
from collections.abc import Callable

import pytest

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.heartbeats import SLICE, Heartbeats
from inference_club.protocol import Ping, decode_message


class FakeTunnel:
    def __init__(
        self, error: Exception | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.error = error
        self.clock = clock
        self.beats = 0
        self.beaten_at = 0.0

    async def heartbeat_once(self, now: float, interval: float) -> None:
        self.beats += 1
        self.beaten_at = (self.clock or asyncio.get_running_loop().time)()
        if self.error is not None:
            raise self.error


async def test_a_failing_tunnel_does_not_stop_the_others() -> None:
    """A tunnel whose send raises anything is skipped; every other one is still pinged."""
    broken = FakeTunnel(RuntimeError("socket gone"))
    odd = FakeTunnel(LookupError("not an OSError"))
    healthy = FakeTunnel()
    heartbeats = Heartbeats(lambda: [broken, odd, healthy], interval=1.0)  # type: ignore[list-item]
    await heartbeats.beat(0.0)
    await heartbeats.beat(1.0)
    assert (broken.beats, odd.beats, healthy.beats) == (2, 2, 2)


class VirtualClock:
    """Time that moves only when the heartbeat loop sleeps; sleeps past ``until`` never end."""

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until
        self.parked = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if self.now + delay > self.until:
            self.parked.set()
            await asyncio.Event().wait()
        self.now += delay
        await asyncio.sleep(0)


async def test_a_round_is_spread_over_the_interval_and_reaches_every_tunnel() -> None:
    """Many tunnels are pinged in slices across the interval, each once per round."""
    clock = VirtualClock(until=0.45)  # one round of 0.4 s; the next one's first slice is at 0.5
    tunnels = [FakeTunnel(clock=clock.time) for _ in range(SLICE * 4)]
    heartbeats = Heartbeats(
        lambda: tunnels,  # type: ignore[arg-type, return-value]
        interval=0.4,
        clock=clock.time,
        sleep=clock.sleep,
    )
    heartbeats.start()
    try:
        await asyncio.wait_for(clock.parked.wait(), 5)
    finally:
        await heartbeats.stop()
    assert all(tunnel.beats == 1 for tunnel in tunnels)
    # Four slices, a quarter of the interval apart, the last at its end.
    offsets = sorted({round(tunnel.beaten_at, 9) for tunnel in tunnels})
    assert offsets == pytest.approx([0.1, 0.2, 0.3, 0.4])
    for number, offset in enumerate(offsets):
        in_slice = [tunnel for tunnel in tunnels if tunnel.beaten_at == pytest.approx(offset)]
        assert in_slice == tunnels[number * SLICE : (number + 1) * SLICE]


async def test_a_congested_tunnel_does_not_hold_up_the_others_pings() -> None:
    """A tunnel whose socket never drains still lets the round ping every other tunnel."""
    written: dict[str, list[bytes]] = {"stuck": [], "healthy": []}
    never = asyncio.Event()

    def connection(name: str, *, stuck: bool) -> ProviderConnection:
        async def send_bytes(data: bytes) -> None:
            if stuck:
                await never.wait()
            written[name].append(data)

        async def close_socket(_code: int, _reason: str) -> None:
            return None

        return ProviderConnection(
            provider_id=len(written[name]),
            provider_name=name,
            owner_id=1,
            models=(),
            send_bytes=send_bytes,
            close_socket=close_socket,
        )

    stuck, healthy = connection("stuck", stuck=True), connection("healthy", stuck=False)
    heartbeats = Heartbeats(lambda: [stuck, healthy], interval=1.0)
    for round_number in range(3):
        await asyncio.wait_for(heartbeats.beat(float(round_number), [stuck, healthy]), 0.5)
        await asyncio.sleep(0.01)

    pings = [frame for data in written["healthy"] for frame in decode_message(data)]
    assert len(pings) == 3
    assert all(isinstance(frame, Ping) for frame in pings)
    await stuck.close(1001, "test over")
    await healthy.close(1001, "test over")
