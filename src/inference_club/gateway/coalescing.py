"""uvicorn's HTTP protocol with every write of one loop turn sent to the socket at once.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its
body in a second write, so a small JSON reply costs two sends, and on loopback or in a VM
each send that wakes the client costs far more than the bytes. Writes made during one turn
of the event loop are joined and handed to the real transport at the end of that turn: one
send per reply, and one per burst of tunnel frames, with no added wait. A reply that is
complete leaves at once, so work the app does after answering never delays it.

An app may also take a request before its task starts (``DirectRequests``): it is offered the
request's cycle once the head is parsed, and a request it accepts is started with ``start``
once its body is in, instead of the task. A request it then declines, or whose client leaves
before its body is complete, gets its task as usual.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from inference_club.gateway.asgi import ASGIApp
from inference_club.gateway.direct_body import DIRECT_BODY, DirectBody

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

logger = logging.getLogger(__name__)


class DirectRequest(Protocol):
    """A request the app serves without the protocol's task, as long as it can."""

    def start(self) -> bool:
        """The body is in: take the request (True), or decline it with nothing done."""

    def client_left(self) -> None:
        """The connection closed while the request was taken."""


# Offered each request's cycle, a way to start its task with another app, and what to call
# once it lets go of the request; returns the request's direct handler, or None.
DirectRequests = Callable[
    [RequestResponseCycle, Callable[[ASGIApp], None], Callable[[], None]],
    DirectRequest | None,
]


# A turn's writes smaller than this together are joined: copying them costs less than
# handing the transport a list of buffers.
_JOIN_BELOW = 16 * 1024


def sends_lines_whole(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport.writelines`` sends its buffers in one system call without joining
    them: uvloop's transports do. asyncio's join them first (Python 3.11), or skip pausing
    the protocol when the buffer fills (3.12.0-3.12.8 and 3.13.0-3.13.1, gh-127655)."""
    return type(transport).__module__.startswith("uvloop")


class CoalescingTransport(asyncio.Transport):
    """A transport that joins the writes of one loop turn; everything else goes straight through."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._sends_lines_whole = sends_lines_whole(transport)
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it goes out with the rest of this turn's writes."""
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data if isinstance(data, bytes) else bytes(data))
        self._pending_size += len(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Queue several pieces."""
        for data in list_of_data:
            self.write(data)

    def write_now(self, data: bytes) -> None:
        """Send ``data`` at once, in one write with anything this turn queued before it.

        For a relayed chunk, which nothing else in its turn joins: it leaves without waiting for
        the turn's other callbacks, and without a callback of its own."""
        if self._pending:
            self.write(data)
            self._flush()
        elif data and not self._transport.is_closing():
            self._transport.write(data)

    def writelines_now(self, pieces: list[bytes]) -> None:
        """Send ``pieces`` at once, in one write with anything this turn queued before them.

        For a tunnel message, which the tunnel's outbox already gathers with the rest of its
        turn: a request leaves for the agent without waiting for the turn's other callbacks."""
        size = sum(map(len, pieces))
        if self._pending:
            self._pending.extend(pieces)
            self._pending_size += size
            self._flush()
        elif not self._transport.is_closing():
            self._send(pieces, size)

    def flush(self) -> None:
        """Send what is queued now instead of at the end of the turn."""
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        size, self._pending_size = self._pending_size, 0
        self._pending = []
        if not self._transport.is_closing():
            self._send(pending, size)

    def _send(self, pieces: list[bytes], size: int) -> None:
        if len(pieces) == 1:
            self._transport.write(pieces[0])
        elif size >= _JOIN_BELOW and self._sends_lines_whole:
            self._transport.writelines(pieces)  # large pieces (tunnel bodies): never copied
        else:
            self._transport.write(b"".join(pieces))

    def close(self) -> None:
        """Send what is queued, then close."""
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is queued and the connection."""
        self._pending = []
        self._pending_size = 0
        self._transport.abort()

    def write_eof(self) -> None:
        """Send what is queued, then half-close."""
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """Whether the real transport can half-close."""
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        """Whether the real transport is closing."""
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The real transport's extra info (socket, peer name, TLS)."""
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        """Pause the real transport's reading."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume the real transport's reading."""
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        """Whether the real transport reads."""
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the real transport's flow-control limits."""
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The real transport's flow-control limits."""
        return self._transport.get_write_buffer_limits()

    def get_write_buffer_size(self) -> int:
        """Bytes queued here and in the real transport."""
        return self._pending_size + self._transport.get_write_buffer_size()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the connection to another protocol (the WebSocket upgrade does)."""
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol the real transport feeds."""
        return self._transport.get_protocol()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a coalescing transport (kept across a WebSocket upgrade),
    giving each request a ``DirectBody`` for its streamed reply."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport, then let uvicorn set up as usual."""
        super().connection_made(CoalescingTransport(transport, self.loop))
        self._direct_requests: DirectRequests | None = getattr(self.app, "direct_request", None)
        # The request taken directly: its handler, the app its task would run, its cycle,
        # and whether it was started (its body was in).
        self._direct: tuple[DirectRequest, ASGI3Application, RequestResponseCycle] | None = None
        self._direct_started = False

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: "ASGI3Application") -> None:
        """Offer the request to the app first; a pipelined one (its body in) gets its task."""
        offer = self._direct_requests
        if offer is not None and self._direct is None and cycle.more_body:
            direct = offer(cycle, partial(self._start_task, cycle), self._let_go)
            if direct is not None:
                self._direct = (direct, app, cycle)
                self._direct_started = False
                return
        super()._start_asgi_task(cycle, app)

    def _start_task(self, cycle: RequestResponseCycle, app: ASGIApp) -> None:
        super()._start_asgi_task(cycle, cast("ASGI3Application", app))

    def _let_go(self) -> None:
        self._direct = None

    def on_message_complete(self) -> None:
        """Let uvicorn end the body, then start a request taken directly."""
        super().on_message_complete()
        taken = self._direct
        if taken is None or self._direct_started or taken[2] is not self.cycle:
            return
        self._direct_started = True
        direct, app, cycle = taken
        try:
            accepted = direct.start()
        except Exception:
            logger.exception("a direct request failed to start; its task serves it")
            accepted = False
        if not accepted:
            self._direct = None
            super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell a request taken directly; one not started yet gets its task, which meters it."""
        taken, started = self._direct, self._direct_started
        self._direct = None
        super().connection_lost(exc)
        if taken is not None:
            direct, app, cycle = taken
            # uvicorn marks only the newest cycle, and a pipelined request may follow this one.
            cycle.disconnected = True
            if started:
                direct.client_left()
            else:
                super()._start_asgi_task(cycle, app)

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection to the WebSocket protocol, then let go of the HTTP parser.

        The parser's callbacks refer back to this protocol, and nothing feeds the parser after
        the upgrade; without that cycle this protocol is freed with the tunnel's connection
        instead of waiting for a full collection (see ``TunnelHeap``).
        """
        super().handle_websocket_upgrade()
        del self.parser

    def on_headers_complete(self) -> None:
        """Let uvicorn start the request, then hand the app a direct writer for its body.

        The request's task has been created but has not run yet, so the app sees the writer.
        """
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not for an upgrade
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})[DIRECT_BODY] = DirectBody(cycle)

    def on_response_complete(self) -> None:
        """The reply is whole: it leaves now, before the app's bookkeeping that follows it
        (metering, closing the stream) runs in the same turn."""
        transport = self.transport
        if isinstance(transport, CoalescingTransport):
            transport.flush()
        super().on_response_complete()
