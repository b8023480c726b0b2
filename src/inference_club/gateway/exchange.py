"""What happened during one proxied request: the facts a usage record is made of."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inference_club.gateway.streams import TunnelStream

if TYPE_CHECKING:
    from inference_club.gateway.admission import Slot


@dataclass(slots=True)
class Exchange:
    """Mutable notes on one request, filled in as it goes and metered once at the end."""

    endpoint: str
    model: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    status: int = 500
    provider_id: int | None = None
    first_byte: float | None = None
    usage: dict[str, Any] | None = None
    audio_seconds: float | None = None
    image_count: int | None = None
    error_type: str | None = None
    client_gone: bool = False
    # The response head went out (through ASGI's send, or with the whole reply at once).
    response_started: bool = False
    # The stream currently open upstream, so a client disconnect can cancel it.
    stream: TunnelStream | None = None
    # The provider slot this request holds, released when it ends.
    slot: "Slot | None" = None
    # Position in the wait queue on arrival (0: no wait); None until a slot was sought.
    queue_position: int | None = None

    def mark_first_byte(self) -> None:
        """The first response byte went to the client now."""
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    @property
    def ttfb_ms(self) -> float | None:
        """Milliseconds from the request's start to its first response byte."""
        if self.first_byte is None:
            return None
        return (self.first_byte - self.started) * 1000

    def tokens(self) -> tuple[int | None, int | None]:
        """Prompt and completion tokens from the backend's usage, when it reported them."""
        if not self.usage:
            return None, None
        prompt = self.usage.get("prompt_tokens")
        completion = self.usage.get("completion_tokens")
        return (
            prompt if isinstance(prompt, int) else None,
            completion if isinstance(completion, int) else None,
        )
