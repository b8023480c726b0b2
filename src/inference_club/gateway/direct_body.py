"""Writing a reply to the client's socket without an ASGI message for each piece.

A stream relays tens of thousands of small chunks a second. Through ASGI each one wakes the
request's task and passes every layer of the app on the way to the socket; written here, a
chunk goes from the tunnel's frame to the client's transport in the same call. The HTTP
protocol puts a ``DirectBody`` in the request's scope; it writes chunks only while the
response is a chunked body in progress that the client keeps up with, and says so, so that
anything else (a client that reads slowly, a head it cannot write as uvicorn would) still
goes through ASGI. A stream's head (``start_chunked``) and its end (``finish_chunked``) are
written here too when the request is served from the tunnel's callbacks (``DirectChat``).

A whole reply of known length (every non-streamed completion) is written by ``respond``: head
and body in one write, as uvicorn would write them for the two ASGI messages, with one check
over the whole head in place of uvicorn's two regular expressions per header.
"""

import weakref
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from inference_club.gateway.asgi import extension

# The key of the writer in ``scope["extensions"]``.
DIRECT_BODY = "inference_club.direct_body"
# Control bytes no header may hold (tab aside); line breaks are counted apart.
_CONTROL = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# Headers by which uvicorn's send would frame the body or end the connection itself.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
# The zero-length chunk that ends a chunked body (no trailers).
_LAST_CHUNK = b"0\r\n\r\n"


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
        """Send one chunk of the body now (call only when ``writable()``)."""
        cycle = self._cycle()
        assert cycle is not None, "write only when writable()"
        cycle.transport.write_now(_chunk(data))  # type: ignore[attr-defined]

    def finish_chunked(self, data: bytes) -> None:
        """Write ``data`` as the body's last chunk (none when empty) and the end of the
        chunked body, and complete the response, as uvicorn's send does for the last body
        message (call only when ``writable()``)."""
        cycle = self._cycle()
        assert cycle is not None, "finish only when writable()"
        end = _chunk(data) + _LAST_CHUNK if data else _LAST_CHUNK
        cycle.transport.write_now(end)  # type: ignore[attr-defined]
        _complete(cycle)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        """Write a whole reply, its Content-Length added, and complete the response.

        False, with nothing written, when it must go through ASGI instead: the response has
        started, the client left or reads slowly, or a header holds a line break or another
        control byte (uvicorn's send then refuses it, as for any reply).
        """
        cycle = self._startable(status)
        if cycle is None:
            return False
        block = _header_block(cycle, headers)
        if block is None:
            return False
        parts = [STATUS_LINE[status], block, b"content-length: %d\r\n" % len(body)]
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if cycle.scope["method"] != "HEAD":
            parts.append(body)
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.transport.write(b"".join(parts))
        _complete(cycle)
        return True

    def start_chunked(self, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """Write the head of a reply whose body follows in chunks, now, as uvicorn's send
        writes it for a start message without a length; its body then goes on through ASGI
        (or ``write``).

        False, with nothing written, when it must go through ASGI instead: as for ``respond``,
        and for a HEAD request, a status without a body, or headers that set the framing or
        the connection themselves.
        """
        cycle = self._startable(status)
        if (
            cycle is None
            or status in (204, 304)
            or cycle.scope["method"] == "HEAD"
            or any(name.lower() in _FRAMING for name, _ in headers)
        ):
            return False
        block = _header_block(cycle, headers)
        if block is None:
            return False
        parts = [STATUS_LINE[status], block]
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.chunked_encoding = True
        cycle.expected_content_length = 0
        cycle.transport.write_now(b"".join(parts))  # type: ignore[attr-defined]
        return True

    def _startable(self, status: int) -> RequestResponseCycle | None:
        """The request's cycle, when a head with ``status`` may be written to it now: the
        response has not started, the client is there and keeps up, the status is known."""
        cycle = self._cycle()
        if (
            cycle is None
            or cycle.response_started
            or cycle.disconnected
            or cycle.flow.write_paused
            or status not in STATUS_LINE
        ):
            return None
        return cycle

    def flush(self) -> None:
        """Send what this connection's writes queued in this turn now, not at its end."""
        cycle = self._cycle()
        if cycle is not None:
            flush = getattr(cycle.transport, "flush", None)
            if flush is not None:
                flush()


def _chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _complete(cycle: RequestResponseCycle) -> None:
    """The response is written whole: complete it as uvicorn's send does after its last body
    message (the connection closes unless kept alive, and may take its next request)."""
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


def _header_block(cycle: RequestResponseCycle, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The header lines of a head, the server's own first; None when one holds a line break
    or another control byte (uvicorn's send then refuses it, as for any reply)."""
    lines = [b"%b: %b\r\n" % pair for pair in (*cycle.default_headers, *headers)]
    block = b"".join(lines)
    # One line per header, and nothing that would split or end the head early.
    if block.count(b"\n") != len(lines) or block.count(b"\r") != len(lines):
        return None
    if len(block.translate(None, _CONTROL)) != len(block):
        return None
    return block


def direct_body(scope: Mapping[str, Any]) -> DirectBody | None:
    """The request's direct writer, when the server provides one."""
    writer: DirectBody | None = extension(scope, DIRECT_BODY)
    return writer
