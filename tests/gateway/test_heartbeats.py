"""The shared heartbeat loop survives any one tunnel failing."""

import asyncio

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.heartbeats import SLICE, Heartbeats
from inference_club.protocol import Ping, decode_message


class FakeTunnel:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.beats = 0
        self.beaten_at = 0.0

    async def heartbeat_once(self, now: float, interval: float) -> None:
        self.beats += 1
        self.beaten_at = asyncio.get_running_loop().time()
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


async def test_a_round_is_spread_over_the_interval_and_reaches_every_tunnel() -> None:
    """Many tunnels are pinged in slices across the interval, each once per round."""
    loop = asyncio.get_running_loop()
    tunnels = [FakeTunnel() for _ in range(SLICE * 4)]
    heartbeats = Heartbeats(lambda: tunnels, interval=0.4)  # type: ignore[arg-type, return-value]
    started = loop.time()
    heartbeats.start()
    try:
        await asyncio.sleep(0.45)  # one round; the next one's first slice is due at 0.5 s
    finally:
        await heartbeats.stop()
    offsets = sorted(tunnel.beaten_at - started for tunnel in tunnels)
    assert all(tunnel.beats == 1 for tunnel in tunnels)
    assert offsets[0] < 0.15  # the first slice went out early in the interval
    assert offsets[-1] >= 0.35  # the last one only near its end


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
