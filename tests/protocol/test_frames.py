"""Every frame type survives encode → decode, and malformed frames are refused clearly."""

import struct

import orjson
import pytest

from inference_club.protocol import (
    MAX_BODY_CHUNK,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Body,
    Cancel,
    CloseCode,
    End,
    Error,
    Frame,
    FrameType,
    Hello,
    ModelCard,
    Models,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Response,
    Welcome,
    Window,
    decode,
    decode_message,
    encode,
    encode_batch,
    read_message,
)

CARD = ModelCard(
    "smollm2",
    service_type="llm",
    supported_features=("reasoning",),
    context_length=8192,
    max_concurrency=4,
    visibility=("network",),
)
TTS = ModelCard("piper", service_type="tts", voices=("joe", "amy"))

EVERY_FRAME: list[Frame] = [
    Hello(PROTOCOL_VERSION, "0.1.0", (CARD, TTS)),
    Welcome(
        PROTOCOL_VERSION,
        "brian-home",
        max_body_chunk=32768,
        initial_window=1 << 20,
        heartbeat_interval=2.5,
    ),
    Models((TTS,)),
    Models(()),
    Request(
        7,
        "POST",
        "/chat/completions",
        "smollm2",
        query="a=1",
        headers=(("content-type", "application/json"),),
        timeout=30.0,
    ),
    Response(7, 200, (("content-type", "text/event-stream"),)),
    Body(7, b"\x00\x01binary\xff" * 100),
    Body(7, b""),
    End(7),
    End(7, {"prompt_tokens": 3, "completion_tokens": 9}),
    Cancel(7),
    Error(7, "backend_unreachable", "connection refused"),
    Window(7, 65536),
    Ping(b"12345678"),
    Pong(b"12345678"),
]


@pytest.mark.parametrize("frame", EVERY_FRAME, ids=lambda f: type(f).__name__)
def test_round_trip(frame: Frame) -> None:
    """decode(encode(frame)) gives back the same frame."""
    assert decode(encode(frame)) == frame


def test_header_layout() -> None:
    """Type byte, 4-byte big-endian stream id, then the raw body bytes."""
    data = encode(Body(258, b"abc"))
    assert data == bytes([FrameType.BODY]) + struct.pack(">I", 258) + b"abc"


def test_model_card_defaults_modalities_from_service_type() -> None:
    """A tts card without modalities takes text in and audio out."""
    card = decode(encode(Models((ModelCard("voice", service_type="tts"),))))
    assert isinstance(card, Models)
    assert card.models[0].input_modalities == ("text",)
    assert card.models[0].output_modalities == ("audio",)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than"),
        (b"\x10\x00", "shorter than"),
        (bytes([0x7F]) + struct.pack(">I", 1), "unknown frame type 0x7f"),
        (bytes([FrameType.REQUEST]) + struct.pack(">I", 1) + b"not json", "not JSON"),
        (bytes([FrameType.REQUEST]) + struct.pack(">I", 1) + b"[1,2]", "must be a JSON object"),
        (
            bytes([FrameType.REQUEST]) + struct.pack(">I", 1) + orjson.dumps({"path": "/x"}),
            "malformed request",
        ),
        (
            bytes([FrameType.REQUEST])
            + struct.pack(">I", 0)
            + orjson.dumps({"method": "GET", "path": "/", "model": "m"}),
            "stream id other than 0",
        ),
        (
            bytes([FrameType.RESPONSE]) + struct.pack(">I", 1) + orjson.dumps({"status": 999}),
            "not an HTTP status",
        ),
        (
            bytes([FrameType.RESPONSE])
            + struct.pack(">I", 1)
            + orjson.dumps({"status": 200, "headers": [["a"]]}),
            "headers",
        ),
        (bytes([FrameType.WINDOW]) + struct.pack(">I", 1) + b"\x00", "4 bytes"),
        (
            bytes([FrameType.HELLO])
            + struct.pack(">I", 0)
            + orjson.dumps(
                {"protocol_version": 1, "models": [{"id": "m", "service_type": "video"}]}
            ),
            "service_type",
        ),
        (bytes([FrameType.PING]) + struct.pack(">I", 0) + b"x" * 65, "longer than 64"),
        (
            bytes([FrameType.END]) + struct.pack(">I", 1) + orjson.dumps({"usage": 3}),
            "usage must be an object",
        ),
    ],
)
def test_malformed_frames_raise_protocol_error(data: bytes, reason: str) -> None:
    """Garbage never decodes into a frame; the error says what is wrong."""
    with pytest.raises(ProtocolError) as raised:
        decode(data)
    assert reason in raised.value.reason
    assert raised.value.code == CloseCode.MALFORMED_FRAME


def test_oversize_body_chunk_is_refused_both_ways() -> None:
    """A body chunk over MAX_BODY_CHUNK is refused when encoding and when decoding."""
    with pytest.raises(ProtocolError) as raised:
        encode(Body(1, b"x" * (MAX_BODY_CHUNK + 1)))
    assert raised.value.code == CloseCode.MESSAGE_TOO_BIG
    data = bytes([FrameType.BODY]) + struct.pack(">I", 1) + b"x" * (MAX_BODY_CHUNK + 1)
    with pytest.raises(ProtocolError) as raised:
        decode(data)
    assert raised.value.code == CloseCode.MESSAGE_TOO_BIG


def test_oversize_frame_is_refused() -> None:
    """Any message over MAX_FRAME_SIZE is refused before parsing."""
    data = bytes([FrameType.MODELS]) + struct.pack(">I", 0) + b" " * MAX_FRAME_SIZE
    with pytest.raises(ProtocolError) as raised:
        decode(data)
    assert raised.value.code == CloseCode.MESSAGE_TOO_BIG


def test_close_reason_fits_a_websocket_close_frame() -> None:
    """Reasons are cut to the 123 bytes a close frame can carry."""
    assert len(ProtocolError("é" * 200).reason.encode()) <= 123


def test_batch_round_trip_keeps_order() -> None:
    """A batch message decodes to its frames in order; one frame is sent as itself."""
    frames: list[Frame] = [
        Request(3, "POST", "/chat/completions", "m"),
        Body(3, b'{"x": 1}'),
        End(3),
    ]
    assert decode_message(encode_batch(frames)) == frames
    assert encode_batch(frames[:1]) == encode(frames[0])
    assert decode_message(encode(frames[1])) == [frames[1]]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([FrameType.BATCH]) + struct.pack(">I", 0), "empty batch"),
        (bytes([FrameType.BATCH]) + struct.pack(">I", 0) + b"\x00\x00", "inside a frame length"),
        (
            bytes([FrameType.BATCH]) + struct.pack(">I", 0) + struct.pack(">I", 50) + b"short",
            "past the end",
        ),
        (
            bytes([FrameType.BATCH])
            + struct.pack(">I", 0)
            + struct.pack(">I", 5)
            + bytes([FrameType.BATCH])
            + b"\x00" * 4,
            "may not nest",
        ),
    ],
)
def test_malformed_batches_are_refused(data: bytes, reason: str) -> None:
    """Truncated, empty or nested batches raise ProtocolError."""
    with pytest.raises(ProtocolError) as raised:
        decode_message(data)
    assert reason in raised.value.reason


def test_decode_refuses_a_batch_outside_decode_message() -> None:
    """decode() never silently returns part of a batch."""
    with pytest.raises(ProtocolError):
        decode(encode_batch([Cancel(1), Cancel(2)]))


def _batch(*parts: bytes) -> bytes:
    return (
        bytes([FrameType.BATCH])
        + struct.pack(">I", 0)
        + b"".join(struct.pack(">I", len(part)) + part for part in parts)
    )


def test_bodies_in_a_batch_decode_like_bodies_alone() -> None:
    """Body frames inside a batch, empty ones included, come out as decode() would give them."""
    frames = [Body(1, b"first"), Body(2, b""), End(1), Body(7, b"x" * MAX_BODY_CHUNK)]
    encoded = [encode(frame) for frame in frames]

    assert decode_message(_batch(*encoded)) == [decode(data) for data in encoded] == frames


@pytest.mark.parametrize(
    ("part", "reason", "code"),
    [
        (
            bytes([FrameType.BODY]) + struct.pack(">I", 1) + b"x" * (MAX_BODY_CHUNK + 1),
            "exceeds",
            CloseCode.MESSAGE_TOO_BIG,
        ),
        (bytes([FrameType.BODY]) + struct.pack(">I", 0) + b"data", "stream id", None),
        (bytes([FrameType.BODY]) + b"\x00\x01", "shorter than", None),
    ],
)
def test_malformed_bodies_in_a_batch_are_refused(
    part: bytes, reason: str, code: CloseCode | None
) -> None:
    """An oversize body, a body on the control stream or a cut header fail the whole batch."""
    with pytest.raises(ProtocolError) as raised:
        decode_message(_batch(encode(End(1)), part))
    assert reason in raised.value.reason
    if code is not None:
        assert raised.value.code == code


def _read(data: bytes) -> list[object]:
    """What ``read_message`` hands on, in order: ("body", stream id, bytes) or a frame."""
    seen: list[object] = []

    def on_body(stream_id: int, chunk: bytes) -> None:
        seen.append(("body", stream_id, chunk))

    read_message(data, on_body, seen.append)
    return seen


def test_read_message_hands_bodies_apart_and_keeps_order() -> None:
    """Body chunks go to their own handler as plain bytes, between the other frames, in order."""
    frames: list[Frame] = [Response(1, 200), Body(1, b"a"), Window(2, 10), Body(2, b""), End(1)]

    assert _read(encode_batch(frames)) == [
        Response(1, 200),
        ("body", 1, b"a"),
        Window(2, 10),
        ("body", 2, b""),
        End(1),
    ]
    assert _read(encode(Body(9, b"alone"))) == [("body", 9, b"alone")]
    assert _read(encode(Body(9, b""))) == [("body", 9, b"")]
    assert _read(encode(End(9))) == [End(9)]


def test_read_message_stops_at_the_first_malformed_frame() -> None:
    """Frames before a malformed one are handed on; the bad one raises; nothing after it."""
    bad_body = bytes([FrameType.BODY]) + struct.pack(">I", 0) + b"data"
    seen: list[object] = []
    with pytest.raises(ProtocolError) as raised:
        read_message(
            _batch(encode(Body(1, b"x")), bad_body, encode(End(1))),
            lambda stream_id, chunk: seen.append((stream_id, chunk)),
            seen.append,
        )

    assert "stream id" in raised.value.reason
    assert seen == [(1, b"x")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([FrameType.BODY]) + struct.pack(">I", 0) + b"data", "stream id"),
        (bytes([FrameType.BODY]) + struct.pack(">I", 4) + b"x" * (MAX_BODY_CHUNK + 1), "exceeds"),
    ],
)
def test_read_message_refuses_a_malformed_lone_body(data: bytes, reason: str) -> None:
    """A body sent as its own message is checked as one in a batch is."""
    with pytest.raises(ProtocolError) as raised:
        _read(data)
    assert reason in raised.value.reason
