"""How big and how long each scenario runs: the full plan and the ``--quick`` smoke plan."""

from dataclasses import dataclass

SCENARIOS = (
    "upload",
    "idle",
    "routing",
    "hold",
    "chat",
    "streams",
    "max-rate",
    "stores",
    "media",
    "cost",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes and durations of every scenario."""

    quick: bool
    chat_rates: tuple[int, ...] = (200, 500, 1000, 2000)
    chat_seconds: float = 10.0
    stream_concurrency: tuple[int, ...] = (100, 500, 1000)
    stream_seconds: float = 10.0
    stream_chunks: int = 64
    stream_interval: float = 0.020
    search_start: int = 250
    search_cap: int = 16000
    search_seconds: float = 4.0
    search_p99_ms: float = 50.0
    hold_counts: tuple[int, ...] = (500, 1000, 2000)
    hold_chunks: int = 20
    hold_interval: float = 1.0
    hold_ramp: float = 2.0
    idle_counts: tuple[int, ...] = (1000, 5000)
    routing_sizes: tuple[int, ...] = (10, 100, 1000, 10000)
    routing_rate: float = 300.0
    routing_seconds: float = 4.0
    stores_rates: tuple[int, ...] = (500, 1000)
    upload_bytes: int = 10 * 1000 * 1000
    upload_repeats: int = 3
    media_concurrency: tuple[int, ...] = (1, 8)
    media_seconds: float = 5.0
    speech_bytes: int = 1_000_000
    image_bytes: int = 1_000_000
    # Requests counted under callgrind, after ``cost_warm_up`` uncounted ones, sent at a rate
    # a process slowed down by callgrind keeps up with.
    cost_requests: int = 300
    cost_warm_up: int = 100
    cost_rate: float = 20.0

    @property
    def stream_seconds_each(self) -> float:
        """How long one streamed reply lasts."""
        return (self.stream_chunks - 1) * self.stream_interval


FULL = Plan(quick=False)

QUICK = Plan(
    quick=True,
    chat_seconds=2.0,
    stream_seconds=2.0,
    search_seconds=1.5,
    search_cap=8000,
    hold_counts=(200,),
    hold_chunks=6,
    hold_interval=0.5,
    hold_ramp=1.0,
    idle_counts=(200,),
    routing_sizes=(10, 1000),
    routing_seconds=1.5,
    upload_repeats=2,
    media_seconds=1.5,
    cost_requests=40,
    cost_warm_up=20,
)
