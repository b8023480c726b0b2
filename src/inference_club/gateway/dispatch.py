"""One call every /v1 route makes to reach a provider: admission, failover, queue header."""

from collections.abc import Sequence

from inference_club.gateway.context import RequestContext
from inference_club.gateway.forwarding import (
    OutgoingRequest,
    SentAttempt,
    Upstream,
    open_upstream,
)
from inference_club.gateway.registry import Candidate


async def forward(
    ctx: RequestContext,
    candidates: Sequence[Candidate],
    outgoing: OutgoingRequest,
    sent: SentAttempt | None = None,
) -> Upstream:
    """Send ``outgoing`` to the first provider that answers, holding a slot on it (``sent``:
    the first attempt went out already)."""
    settings = ctx.services.settings
    upstream = await open_upstream(
        candidates,
        outgoing,
        ctx.exchange,
        timeout=settings.upstream_timeout,
        max_attempts=settings.max_attempts,
        admission=ctx.services.admission,
        caller=ctx.caller,
        sent=sent,
    )
    ctx.extra_headers.append(queue_position_header(ctx.exchange.queue_position or 0))
    return upstream


def queue_position_header(position: int) -> tuple[bytes, bytes]:
    """The header saying how many requests were waiting ahead of this one on arrival."""
    return (b"x-queue-position", str(position).encode())
