"""Everything one /v1 request handler works with, in one object."""

import asyncio
from dataclasses import dataclass, field

from inference_club.gateway.asgi import RawHeaders, Receive, Scope, Send
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.registry import Caller
from inference_club.gateway.services import Services
from inference_club.store import KeyIdentity


@dataclass(slots=True)
class RequestContext:
    """One authenticated /v1 request in flight."""

    scope: Scope
    receive: Receive
    send: Send
    services: Services
    identity: KeyIdentity
    exchange: Exchange
    caller: Caller
    # Headers every response of this request carries (rate-limit state, request id).
    extra_headers: RawHeaders = field(default_factory=list)
    # Watches for the client leaving once the body is read; stopped when the request ends.
    watcher: asyncio.Task[None] | None = None
    # The timer that starts ``watcher`` (the watch begins a little after the body is read).
    watch_timer: asyncio.TimerHandle | None = None
