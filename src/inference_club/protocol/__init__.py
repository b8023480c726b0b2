"""The tunnel protocol between gateway and agent: frames, model cards and flow control.

This package imports nothing else of inference-club, so both sides can depend on it.
"""

from inference_club.protocol.errors import CloseCode, ProtocolError
from inference_club.protocol.flow import ReceiveWindow, SendWindow, WindowClosed
from inference_club.protocol.frames import (
    CONTROL_STREAM,
    DEFAULT_INITIAL_WINDOW,
    MAX_BODY_CHUNK,
    MAX_FRAME_SIZE,
    MAX_STREAM_ID,
    PROTOCOL_VERSION,
    Body,
    Cancel,
    End,
    Error,
    Frame,
    FrameType,
    Hello,
    Models,
    Ping,
    Pong,
    Request,
    Response,
    Welcome,
    Window,
    decode,
    decode_message,
    encode,
    encode_batch,
    pack_messages,
)
from inference_club.protocol.models import SERVICE_TYPES, ModelCard
from inference_club.protocol.outbox import DirectWriter, Outbox

__all__ = [
    "CONTROL_STREAM",
    "DEFAULT_INITIAL_WINDOW",
    "MAX_BODY_CHUNK",
    "MAX_FRAME_SIZE",
    "MAX_STREAM_ID",
    "PROTOCOL_VERSION",
    "SERVICE_TYPES",
    "Body",
    "Cancel",
    "CloseCode",
    "DirectWriter",
    "End",
    "Error",
    "Frame",
    "FrameType",
    "Hello",
    "ModelCard",
    "Models",
    "Outbox",
    "Ping",
    "Pong",
    "ProtocolError",
    "ReceiveWindow",
    "Request",
    "Response",
    "SendWindow",
    "Welcome",
    "Window",
    "WindowClosed",
    "decode",
    "decode_message",
    "encode",
    "encode_batch",
    "pack_messages",
]
