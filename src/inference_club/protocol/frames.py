"""Tunnel frames and their binary encoding.

One WebSocket binary message is one frame: ``type (1 byte) | stream id (4 bytes, big endian) |
payload``, or a batch frame whose payload is several frames, each preceded by its length
(4 bytes, big endian). Control payloads are small JSON objects; bodies are raw bytes of at most
``MAX_BODY_CHUNK``, so large uploads and downloads never sit whole in memory on either side.
Stream 0 is the connection itself (hello, welcome, models, ping, pong).

Frames are slotted dataclasses that nothing changes once made, but not frozen ones: a frozen
dataclass sets each field through ``object.__setattr__``, so on Python 3.11 a frame of seven
fields takes six times the instructions to make (about 10,500 against 1,650), and every
request makes a dozen frames on each side of the tunnel.
"""

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import orjson

from inference_club.protocol.errors import CloseCode, ProtocolError
from inference_club.protocol.models import ModelCard

PROTOCOL_VERSION = 1
CONTROL_STREAM = 0
MAX_BODY_CHUNK = 64 * 1024
# Control frames carry model lists; 4 MiB leaves room for thousands of models.
MAX_FRAME_SIZE = 4 * 1024 * 1024
DEFAULT_INITIAL_WINDOW = 256 * 1024
MAX_STREAM_ID = 2**32 - 1

_HEADER = struct.Struct(">BI")
_STREAM_ID = struct.Struct(">I")
_WINDOW = struct.Struct(">I")
_LENGTH = struct.Struct(">I")
# The longest body frame: its header and the largest chunk.
_MAX_BODY_FRAME = _HEADER.size + MAX_BODY_CHUNK


class FrameType(IntEnum):
    """The first byte of every frame."""

    HELLO = 0x01
    WELCOME = 0x02
    MODELS = 0x03
    REQUEST = 0x10
    RESPONSE = 0x11
    BODY = 0x12
    END = 0x13
    CANCEL = 0x14
    ERROR = 0x15
    WINDOW = 0x16
    PING = 0x20
    PONG = 0x21
    # Several frames in one message: fewer WebSocket messages for small requests and replies.
    BATCH = 0x30


# Looked up by the first byte: faster than calling the enum on every frame.
_FRAME_TYPES = {int(frame_type): frame_type for frame_type in FrameType}
_BATCH_HEADER = _HEADER.pack(FrameType.BATCH, CONTROL_STREAM)


# Each member by its name as a plain attribute, for the code every frame runs: on Python 3.11
# reading a member off the enum goes through ``EnumType.__getattr__``'s hook, a call of some
# 900 instructions.
_Types = SimpleNamespace(**{member.name: member for member in FrameType})


Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Hello:
    """Agent → gateway, first frame: who I am and what I serve."""

    protocol_version: int
    agent_version: str
    models: tuple[ModelCard, ...]
    # How many requests of members other than the owner the provider takes at once;
    # None lets the gateway use half of the provider's capacity.
    guest_concurrency: int | None = None
    stream_id: int = CONTROL_STREAM


@dataclass(slots=True)
class Welcome:
    """Gateway → agent, answer to hello: the provider name and the limits of this connection."""

    protocol_version: int
    provider: str
    max_body_chunk: int = MAX_BODY_CHUNK
    initial_window: int = DEFAULT_INITIAL_WINDOW
    heartbeat_interval: float = 5.0
    stream_id: int = CONTROL_STREAM


@dataclass(slots=True)
class Models:
    """Agent → gateway: the full current model list, replacing the last one."""

    models: tuple[ModelCard, ...]
    stream_id: int = CONTROL_STREAM


@dataclass(slots=True)
class Request:
    """Gateway → agent: open a stream for one HTTP request to a local backend."""

    stream_id: int
    method: str
    path: str
    model: str
    query: str = ""
    headers: Headers = ()
    # Seconds the gateway waits for the response head; relative, so clock skew does not matter.
    timeout: float = 60.0


@dataclass(slots=True)
class Response:
    """Agent → gateway: the backend's status and headers."""

    stream_id: int
    status: int
    headers: Headers = ()


@dataclass(slots=True)
class Body:
    """Either way: one chunk of a request or response body."""

    stream_id: int
    data: bytes


@dataclass(slots=True)
class End:
    """Either way: the body is complete."""

    stream_id: int
    usage: dict[str, Any] | None = None


@dataclass(slots=True)
class Cancel:
    """Gateway → agent: abort this stream now."""

    stream_id: int


@dataclass(slots=True)
class Error:
    """Agent → gateway: the stream failed, before or after the response head."""

    stream_id: int
    type: str
    message: str


# The error type of a stream whose model server sent no head within the request's timeout:
# the gateway's own wait for that head ends at the same moment.
BACKEND_TIMEOUT = "backend_timeout"


@dataclass(slots=True)
class Window:
    """Either way: the receiver consumed ``increment`` more bytes of this stream's body."""

    stream_id: int
    increment: int


@dataclass(slots=True)
class Ping:
    """Heartbeat; the peer answers with a pong carrying the same payload."""

    payload: bytes = b""
    stream_id: int = CONTROL_STREAM


@dataclass(slots=True)
class Pong:
    """Answer to a ping."""

    payload: bytes = b""
    stream_id: int = CONTROL_STREAM


Frame = (
    Hello
    | Welcome
    | Models
    | Request
    | Response
    | Body
    | End
    | Cancel
    | Error
    | Window
    | Ping
    | Pong
)
# A frame ready for a message: its bytes, or a body's header and data (``encode_body_parts``).
Encoded = bytes | tuple[bytes, bytes]
# Where ``read_message`` hands a body chunk (stream id, bytes) and every other frame.
BodyHandler = Callable[[int, bytes], None]
FrameHandler = Callable[[Frame], None]


def encode(frame: Frame) -> bytes:
    """The bytes of one WebSocket binary message carrying ``frame``."""
    if isinstance(frame, Body):
        return encode_body(frame.stream_id, frame.data)
    frame_type, payload = _payload(frame)
    data = _HEADER.pack(frame_type, frame.stream_id) + payload
    if len(data) > MAX_FRAME_SIZE:
        msg = f"frame of {len(data)} bytes exceeds {MAX_FRAME_SIZE}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    return data


def encode_parts(frame: Frame) -> Encoded:
    """``encode``, with a body's data left apart from its header (``encode_body_parts``)."""
    if isinstance(frame, Body):
        return encode_body_parts(frame.stream_id, frame.data)
    return encode(frame)


def encode_body(stream_id: int, data: bytes) -> bytes:
    """The bytes of a ``Body`` frame, without making one."""
    return b"".join(encode_body_parts(stream_id, data))


def encode_body_parts(stream_id: int, data: bytes) -> tuple[bytes, bytes]:
    """A ``Body`` frame's header and its data, kept apart: the data goes into a message
    without being copied next to its header first."""
    if len(data) > MAX_BODY_CHUNK:
        msg = f"body chunk of {len(data)} bytes exceeds {MAX_BODY_CHUNK}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    return _HEADER.pack(_Types.BODY, stream_id), data


def encoded_size(encoded: Encoded) -> int:
    """The size in bytes of an encoded frame."""
    if isinstance(encoded, bytes):
        return len(encoded)
    header, data = encoded
    return len(header) + len(data)


def encode_batch(frames: Sequence[Frame]) -> bytes:
    """One message carrying ``frames`` in order (a single frame is sent as itself)."""
    encoded = [encode(frame) for frame in frames]
    message = b"".join(_batch_parts(encoded, [len(data) for data in encoded]))
    if len(message) > MAX_FRAME_SIZE:
        msg = f"batch of {len(message)} bytes exceeds {MAX_FRAME_SIZE}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    return message


def pack_message_parts(
    encoded: Sequence[Encoded], limit: int = MAX_FRAME_SIZE
) -> list[list[bytes]]:
    """Encoded frames, in order, as few messages as fit in ``limit`` bytes each, each message
    as the parts that joined make it: a writer that can send several buffers at once copies
    no body data. A frame alone in its message is sent as itself; several go in one batch
    message."""
    if len(encoded) == 1:  # most writes: one frame, one message, whatever its size
        return [_parts_of(encoded[0])]
    messages: list[list[bytes]] = []
    group: list[Encoded] = []
    sizes: list[int] = []
    size = _HEADER.size
    for frame in encoded:
        frame_size = encoded_size(frame)
        if group and size + _LENGTH.size + frame_size > limit:
            messages.append(_batch_parts(group, sizes))
            group, sizes, size = [], [], _HEADER.size
        group.append(frame)
        sizes.append(frame_size)
        size += _LENGTH.size + frame_size
    if group:
        messages.append(_batch_parts(group, sizes))
    return messages


def _batch_parts(group: Sequence[Encoded], sizes: list[int]) -> list[bytes]:
    """The parts of one message carrying ``group``, whose frames are ``sizes`` bytes long."""
    if len(group) == 1:
        return _parts_of(group[0])
    parts = [_BATCH_HEADER]
    for frame, frame_size in zip(group, sizes, strict=True):
        parts.append(_LENGTH.pack(frame_size))
        if isinstance(frame, bytes):
            parts.append(frame)
        else:
            parts.extend(frame)
    return parts


def _parts_of(frame: Encoded) -> list[bytes]:
    """The parts of a message carrying ``frame`` alone: the frame itself."""
    return [frame] if isinstance(frame, bytes) else list(frame)


def decode_message(data: bytes) -> list[Frame]:
    """Every frame of one WebSocket message, in order; malformed input raises ProtocolError."""
    frames: list[Frame] = []
    append = frames.append
    read_message(data, lambda stream_id, chunk: append(Body(stream_id, chunk)), append)
    return frames


def read_message(data: bytes, on_body: BodyHandler, on_frame: FrameHandler) -> None:
    """Hand every frame of one WebSocket message on, in order, as it is read.

    A body chunk goes to ``on_body(stream_id, data)`` with no frame object made (every relayed
    chunk takes this path); any other frame is decoded and goes to ``on_frame``. Malformed
    input raises ProtocolError, after the frames before it were handed on.
    """
    size = len(data)
    if size < _HEADER.size or data[0] != _Types.BATCH:
        if size >= _HEADER.size and data[0] == _Types.BODY:
            (stream_id,) = _STREAM_ID.unpack_from(data, 1)
            payload = data[_HEADER.size :]
            # ``_check_body``'s conditions, tested here first (a call per chunk costs more).
            if size > _MAX_BODY_FRAME or stream_id == CONTROL_STREAM:
                _check_body(stream_id, payload)
            on_body(stream_id, payload)
        else:
            on_frame(decode(data))
    else:
        _read_batch(data, on_body, on_frame)


def _read_batch(data: bytes, on_body: BodyHandler, on_frame: FrameHandler) -> None:
    """``read_message`` for a batch message."""
    size = len(data)
    if size > MAX_FRAME_SIZE:
        msg = f"batch of {size} bytes exceeds {MAX_FRAME_SIZE}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    if size == _HEADER.size:
        msg = "empty batch"
        raise ProtocolError(msg)
    offset = _HEADER.size
    while offset < size:
        if offset + _LENGTH.size > size:
            msg = "batch ends inside a frame length"
            raise ProtocolError(msg)
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        end = offset + length
        if end > size:
            msg = "batch frame runs past the end of the message"
            raise ProtocolError(msg)
        if length >= _HEADER.size and data[offset] == _Types.BODY:
            (stream_id,) = _STREAM_ID.unpack_from(data, offset + 1)
            payload = data[offset + _HEADER.size : end]
            if length > _MAX_BODY_FRAME or stream_id == CONTROL_STREAM:
                _check_body(stream_id, payload)  # raises, saying which
            on_body(stream_id, payload)
        elif length and data[offset] == _Types.BATCH:
            msg = "batches may not nest"
            raise ProtocolError(msg)
        else:
            on_frame(decode(data[offset:end]))
        offset = end


def _payload(frame: Frame) -> tuple[FrameType, bytes]:  # noqa: PLR0911 - one branch per type
    # The frames every request sends come first: each case a frame passes costs a failed
    # isinstance check.
    match frame:
        case Request():
            return _Types.REQUEST, orjson.dumps(
                {
                    "method": frame.method,
                    "path": frame.path,
                    "query": frame.query,
                    "headers": frame.headers,
                    "model": frame.model,
                    "timeout": frame.timeout,
                }
            )
        case Response():
            return _Types.RESPONSE, orjson.dumps({"status": frame.status, "headers": frame.headers})
        case End():
            return _Types.END, b"" if frame.usage is None else orjson.dumps({"usage": frame.usage})
        case Window():
            return _Types.WINDOW, _WINDOW.pack(frame.increment)
        case Error():
            return _Types.ERROR, orjson.dumps({"type": frame.type, "message": frame.message})
        case Cancel():
            return _Types.CANCEL, b""
        case Ping():
            return _Types.PING, frame.payload
        case Pong():
            return _Types.PONG, frame.payload
        case Hello():
            return _Types.HELLO, orjson.dumps(
                {
                    "protocol_version": frame.protocol_version,
                    "agent_version": frame.agent_version,
                    "models": [card.to_json() for card in frame.models],
                    "guest_concurrency": frame.guest_concurrency,
                }
            )
        case Welcome():
            return _Types.WELCOME, orjson.dumps(
                {
                    "protocol_version": frame.protocol_version,
                    "provider": frame.provider,
                    "max_body_chunk": frame.max_body_chunk,
                    "initial_window": frame.initial_window,
                    "heartbeat_interval": frame.heartbeat_interval,
                }
            )
        case Models():
            return _Types.MODELS, orjson.dumps(
                {"models": [card.to_json() for card in frame.models]}
            )
        case Body():  # handled by encode() without a copy through here
            return _Types.BODY, frame.data
    msg = f"not a frame: {frame!r}"  # pragma: no cover - the match is exhaustive
    raise TypeError(msg)


def decode(data: bytes) -> Frame:
    """Parse one WebSocket message; anything malformed raises ProtocolError."""
    if len(data) < _HEADER.size:
        msg = f"frame of {len(data)} bytes is shorter than its {_HEADER.size}-byte header"
        raise ProtocolError(msg)
    if len(data) > MAX_FRAME_SIZE:
        msg = f"frame of {len(data)} bytes exceeds {MAX_FRAME_SIZE}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    raw_type, stream_id = _HEADER.unpack_from(data)
    frame_type = _FRAME_TYPES.get(raw_type)
    if frame_type is None:
        msg = f"unknown frame type 0x{raw_type:02x}"
        raise ProtocolError(msg)
    if frame_type is _Types.BATCH:
        msg = "a batch must be read with decode_message"
        raise ProtocolError(msg)
    payload = data[_HEADER.size :]
    if frame_type is _Types.BODY:
        return _body(stream_id, payload)
    return _decode_control(frame_type, stream_id, payload)


def _body(stream_id: int, payload: bytes) -> Body:
    _check_body(stream_id, payload)
    return Body(stream_id, payload)


def _check_body(stream_id: int, payload: bytes) -> None:
    if len(payload) > MAX_BODY_CHUNK:
        msg = f"body chunk of {len(payload)} bytes exceeds {MAX_BODY_CHUNK}"
        raise ProtocolError(msg, CloseCode.MESSAGE_TOO_BIG)
    if stream_id == CONTROL_STREAM:
        msg = "body frame needs a stream id other than 0"
        raise ProtocolError(msg)


def _decode_control(frame_type: FrameType, stream_id: int, payload: bytes) -> Frame:
    if frame_type in (_Types.PING, _Types.PONG):
        if len(payload) > 64:
            msg = f"{frame_type.name.lower()} payload longer than 64 bytes"
            raise ProtocolError(msg)
        return Ping(payload, stream_id) if frame_type is _Types.PING else Pong(payload, stream_id)
    if frame_type is _Types.CANCEL:
        _require_stream(frame_type, stream_id)
        return Cancel(stream_id)
    if frame_type is _Types.WINDOW:
        if len(payload) != _WINDOW.size:
            msg = "window frame payload must be 4 bytes"
            raise ProtocolError(msg)
        (increment,) = _WINDOW.unpack(payload)
        _require_stream(frame_type, stream_id)
        return Window(stream_id, increment)
    if frame_type is _Types.END:
        _require_stream(frame_type, stream_id)
        if not payload:
            return End(stream_id)
        usage = _object(frame_type, payload).get("usage")
        if usage is not None and not isinstance(usage, dict):
            msg = "end frame usage must be an object"
            raise ProtocolError(msg)
        return End(stream_id, usage)
    body = _object(frame_type, payload)
    try:
        return _decode_json_frame(frame_type, stream_id, body)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        msg = f"malformed {frame_type.name.lower()} frame: {exc!s}"
        raise ProtocolError(msg) from exc


def _decode_json_frame(frame_type: FrameType, stream_id: int, body: dict[str, Any]) -> Frame:
    match frame_type:
        case _Types.HELLO:
            guests = body.get("guest_concurrency")
            if guests is not None and (not isinstance(guests, int) or guests < 0):
                msg = "guest_concurrency must be a non-negative integer"
                raise ProtocolError(msg)
            return Hello(
                protocol_version=int(body["protocol_version"]),
                agent_version=str(body.get("agent_version", "")),
                models=_cards(body.get("models", [])),
                guest_concurrency=guests,
            )
        case _Types.WELCOME:
            return Welcome(
                protocol_version=int(body["protocol_version"]),
                provider=str(body["provider"]),
                max_body_chunk=int(body.get("max_body_chunk", MAX_BODY_CHUNK)),
                initial_window=int(body.get("initial_window", DEFAULT_INITIAL_WINDOW)),
                heartbeat_interval=float(body.get("heartbeat_interval", 5.0)),
            )
        case _Types.MODELS:
            return Models(models=_cards(body["models"]))
        case _Types.REQUEST:
            _require_stream(frame_type, stream_id)
            return Request(
                stream_id=stream_id,
                method=_string(body, "method"),
                path=_string(body, "path"),
                model=_string(body, "model"),
                query=str(body.get("query", "")),
                headers=_headers(body.get("headers", [])),
                timeout=float(body.get("timeout", 60.0)),
            )
        case _Types.RESPONSE:
            _require_stream(frame_type, stream_id)
            status = body["status"]
            if not isinstance(status, int) or not 100 <= status <= 599:
                msg = f"response status {status!r} is not an HTTP status"
                raise ProtocolError(msg)
            return Response(stream_id, status, _headers(body.get("headers", [])))
        case _Types.ERROR:
            _require_stream(frame_type, stream_id)
            return Error(stream_id, _string(body, "type"), str(body.get("message", "")))
    msg = f"unexpected frame type {frame_type.name}"  # pragma: no cover
    raise ProtocolError(msg)


def _object(frame_type: FrameType, payload: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        msg = f"{frame_type.name.lower()} frame payload is not JSON"
        raise ProtocolError(msg) from exc
    if not isinstance(body, dict):
        msg = f"{frame_type.name.lower()} frame payload must be a JSON object"
        raise ProtocolError(msg)
    return body


def _require_stream(frame_type: FrameType, stream_id: int) -> None:
    if stream_id == CONTROL_STREAM:
        msg = f"{frame_type.name.lower()} frame needs a stream id other than 0"
        raise ProtocolError(msg)


def _string(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        msg = f"{key} must be a string"
        raise ProtocolError(msg)
    return value


def _headers(value: Any) -> Headers:
    if not isinstance(value, list):
        msg = "headers must be a list of [name, value] pairs"
        raise ProtocolError(msg)
    pairs: list[tuple[str, str]] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
        ):
            msg = "headers must be a list of [name, value] string pairs"
            raise ProtocolError(msg)
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _cards(value: Any) -> tuple[ModelCard, ...]:
    if not isinstance(value, list):
        msg = "models must be a list"
        raise ProtocolError(msg)
    return tuple(ModelCard.from_json(item) for item in value)
