"""The shared heartbeat loop survives any one tunnel failing."""

from inference_club.gateway.heartbeats import Heartbeats


class FakeTunnel:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.beats = 0

    async def heartbeat_once(self, now: float, interval: float) -> None:
        self.beats += 1
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
