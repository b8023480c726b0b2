"""One call every /v1 route makes to reach a provider: admission, failover, queue header."""

from collections.abc import Sequence

from inference_club.gateway.context import RequestContext
from inference_club.gateway.forwarding import OutgoingRequest, Upstream, open_upstream
from inference_club.gateway.registry import Candidate


async def forward(
    ctx: RequestContext, candidates: Sequence[Candidate], outgoing: OutgoingRequest
) -> Upstream:
    """Send ``outgoing`` to the first provider that answers, holding a slot on it."""
    settings = ctx.services.settings
    upstream = await open_upstream(
        candidates,
        outgoing,
        ctx.exchange,
        timeout=settings.upstream_timeout,
        max_attempts=settings.max_attempts,
        admission=ctx.services.admission,
        caller=ctx.caller,
    )
    position = ctx.exchange.queue_position or 0
    ctx.extra_headers.append((b"x-queue-position", str(position).encode()))
    return upstream
