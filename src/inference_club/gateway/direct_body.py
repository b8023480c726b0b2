"""Writing a streamed reply's chunks to the client's socket without an ASGI message each.

A stream relays tens of thousands of small chunks a second. Through ASGI each one wakes the
request's task and passes every layer of the app on the way to the socket; written here, a
chunk goes from the tunnel's frame to the client's transport in the same call. The HTTP
protocol puts a ``DirectBody`` in the request's scope; it writes only while the response is a
chunked body in progress that the client keeps up with, and says so, so that everything else
(the head, the last chunk, a client that reads slowly) still goes through ASGI.
"""

import weakref
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from inference_club.gateway.asgi import extension

# The key of the writer in ``scope["extensions"]``.
DIRECT_BODY = "inference_club.direct_body"


class DirectBody:
    """Chunks of one response's body, written straight to its connection.

    It lives in the request's scope, which the cycle holds: it refers back to the cycle
    weakly, so a finished request is freed at once rather than left for the collector.
    """

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = weakref.ref(cycle)

    def writable(self) -> bool:
        """Whether a chunk may be written now: the head went out, the body is chunked and not
        finished, the client is there and its connection is not paused for back-pressure."""
        cycle = self._cycle()
        return (
            cycle is not None
            and cycle.response_started
            and cycle.chunked_encoding is True
            and not cycle.response_complete
            and not cycle.disconnected
            and not cycle.flow.write_paused
        )

    def write(self, data: bytes) -> None:
        """Write one chunk of the body (call only when ``writable()``)."""
        cycle = self._cycle()
        assert cycle is not None, "write only when writable()"
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def flush(self) -> None:
        """Send what this connection's writes queued in this turn now, not at its end."""
        cycle = self._cycle()
        if cycle is not None:
            flush = getattr(cycle.transport, "flush", None)
            if flush is not None:
                flush()


def direct_body(scope: Mapping[str, Any]) -> DirectBody | None:
    """The request's direct writer, when the server provides one."""
    writer: DirectBody | None = extension(scope, DIRECT_BODY)
    return writer
