"""A tunnel's binary messages in and out of the gateway without an ASGI message each.

Through ASGI, every message from an agent is queued, wakes the tunnel's task, and pauses and
resumes reading the socket on the way (uvicorn's back-pressure for a slow app). The tunnel's
frames are handled without waiting (a stream's chunk goes to its reader or its client's
socket), so once the tunnel is set up it installs a sink here and each message is handled in
the call that read it. Text messages, the close and anything that arrives while earlier
messages still wait in the queue go through ASGI as before, in order.

While a sink is installed, the agent's plain binary frames are read here from the socket's
bytes (``ClientFrames``) rather than by websockets' parser; whatever else comes (a control
frame, text, the close) and everything after it in that read goes to websockets as before.

The other way, the tunnel's outbox writes its frames here without its writer task, while the
socket takes writes; when it pushes back, the outbox waits through ASGI.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from inference_club.gateway.asgi import extension
from inference_club.gateway.client_frames import ClientFrames, NotPlain
from inference_club.gateway.coalescing import CoalescingTransport
from inference_club.protocol.websocket_frames import frame_header

# The key of the protocol's ``DirectMessages`` in ``scope["extensions"]``.
DIRECT_MESSAGES = "inference_club.direct_messages"

MessageSink = Callable[[bytes], None]


class DirectMessages:
    """One WebSocket connection's binary messages: read into a sink, written at once."""

    # Weakly referable: the tunnel heap checks that a departed tunnel's was freed.
    __slots__ = ("__weakref__", "_protocol", "sink")

    def __init__(self, protocol: "DirectMessagesProtocol") -> None:
        self._protocol: DirectMessagesProtocol | None = protocol
        self.sink: MessageSink | None = None

    def install(self, sink: MessageSink | None) -> None:
        """Hand each binary message to ``sink`` from now on (None: back to ASGI)."""
        self.sink = sink

    def ready(self) -> bool:
        """Whether a message may be written now: the connection is open, accepted and not
        paused for back-pressure."""
        protocol = self._protocol
        return (
            protocol is not None
            and protocol.handshake_complete
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.initial_response is None
            and protocol.writable.is_set()
        )

    def write_parts(self, parts: Sequence[bytes]) -> None:
        """Write one binary message, ``parts`` joined in order (after ``ready()`` said so), as
        ASGI's send would, and send it now: the tunnel's outbox gathers a turn's later messages
        itself, so the turn's first (a request, say) need not wait for the turn to end. The
        connection's transport hands large parts on to uvloop as they are, without copying
        them (``CoalescingTransport``)."""
        protocol = self._protocol
        if protocol is None:
            msg = "the connection is closed"
            raise ConnectionError(msg)
        pieces = [frame_header(sum(map(len, parts))), *parts]
        transport = protocol.transport
        if isinstance(transport, CoalescingTransport):
            transport.writelines_now(pieces)
        else:
            transport.writelines(pieces)

    def detach(self) -> None:
        """The connection is gone: drop the protocol and the sink (both refer back here)."""
        self._protocol = None
        self.sink = None


class DirectMessagesProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that offers the app a ``DirectMessages`` in its scope."""

    direct: DirectMessages | None = None
    # The agent's frames read here while a sink takes them (made once the tunnel is set up).
    client_frames: ClientFrames | None = None

    def handle_connect(self, event: Any) -> None:
        """Let uvicorn build the scope, then add the direct hand-over to it."""
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake was refused
            self.direct = DirectMessages(self)
            self.client_frames = ClientFrames(self.config.ws_max_size)
            scope.setdefault("extensions", {})[DIRECT_MESSAGES] = self.direct

    def data_received(self, data: bytes) -> None:
        """Plain binary frames straight to the sink; anything else, and all after it, to
        websockets (which must be between frames for this: it is unless it holds bytes)."""
        frames = self.client_frames
        if frames is None or (not frames and self.conn.reader.buffer):
            super().data_received(data)
            return
        frames.feed(data)
        while (sink := self._sink_now()) is not None:
            message = frames.next_message()
            if message is None:
                return  # the rest of the frame is still on its way
            if isinstance(message, NotPlain):
                break
            sink(message)
        if frames:
            super().data_received(frames.take_rest())

    def _sink_now(self) -> MessageSink | None:
        """The sink, when a message may be handed to it now rather than through ASGI."""
        direct = self.direct
        sink = direct.sink if direct is not None else None
        if sink is None or self.close_sent or not self.queue.empty():
            return None
        return sink

    def connection_lost(self, exc: Exception | None) -> None:
        """Close as uvicorn does, then cut the reference cycles the connection leaves.

        The gateway freezes connected tunnels out of the collector's passes (``TunnelHeap``),
        and frozen objects in cycles wait for a full collection, which stalls every request.
        Without cycles a closed tunnel is freed as soon as its task lets go of it.
        """
        super().connection_lost(exc)
        if self.direct is not None:
            self.direct.detach()
        # websockets' parser is a generator that holds its connection for as long as it is
        # suspended, and it stays suspended even after the stream ended; nothing reads now.
        self.conn.parser.close()

    def send_receive_event_to_app(self) -> None:
        """A whole message: to the sink when one is installed and nothing waits before it."""
        sink = self._sink_now()
        if sink is None or self.curr_msg_data_type != "bytes":
            super().send_receive_event_to_app()
            return
        frames = self.frames
        self.frames = []
        sink(frames[0] if len(frames) == 1 else b"".join(frames))


def direct_messages(scope: Mapping[str, Any]) -> DirectMessages | None:
    """The connection's direct hand-over, when the server provides one."""
    direct: DirectMessages | None = extension(scope, DIRECT_MESSAGES)
    return direct
