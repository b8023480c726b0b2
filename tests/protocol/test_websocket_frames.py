"""Frames made by ``frame_header`` read, on websockets' client side, as the one message they
carry."""

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from inference_club.protocol.websocket_frames import frame_header

# One of each header length: 7-bit, 16-bit and 64-bit.
SIZES = (0, 1, 125, 126, 65535, 65536, 70001)


def _payload(size: int) -> bytes:
    return bytes((index * 7 + size) % 256 for index in range(size))


def _one_binary_frame(events: list[object]) -> bytes:
    assert len(events) == 1
    frame = events[0]
    assert isinstance(frame, Frame)
    assert frame.opcode is Opcode.BINARY
    assert frame.fin
    return bytes(frame.data)


@pytest.mark.parametrize("size", SIZES)
def test_an_unmasked_frame_is_what_a_client_reads(size: int) -> None:
    """The gateway's frames: a client reads one binary message of the payload."""
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
    payload = _payload(size)

    client.receive_data(frame_header(size) + payload)

    assert _one_binary_frame(client.events_received()) == payload
