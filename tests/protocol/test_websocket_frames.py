"""Frames made here read, on websockets' client side (the gateway's frames) and server side (the
agent's masked frames), as the one message they carry."""

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from inference_club.protocol import websocket_frames
from inference_club.protocol.websocket_frames import MaskKeys, frame_header, masked_frame_parts

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


@pytest.mark.parametrize("size", SIZES)
def test_a_masked_frame_is_what_a_server_reads(size: int) -> None:
    """The agent's frames: a server reads one binary message of the payload, unmasked."""
    server = ServerProtocol(state=State.OPEN, max_size=None)
    payload = _payload(size)
    key = b"\x01\x9a\xff\x3c"

    frame = b"".join(masked_frame_parts([payload], key))
    server.receive_data(frame)

    assert _one_binary_frame(server.events_received()) == payload
    if size >= 4:
        assert payload not in frame  # the payload travels masked


@pytest.mark.parametrize(
    "sizes",
    [
        (5,),
        (70001,),
        (5, 70001),  # a small header part, then a body at an offset that is not a multiple of 4
        (1, 2, 3, 65536, 7, 4097, 2047, 2048, 9),
        (3000, 1, 3000),
        (),
    ],
)
def test_a_message_in_parts_makes_the_frame_of_the_parts_joined(sizes: tuple[int, ...]) -> None:
    """The pieces of a message given in parts, joined, are byte for byte the masked frame of
    the whole message: each byte masked by the key's byte at its place in the whole payload,
    and a server reads the message."""
    parts = [_payload(size) + bytes([index]) for index, size in enumerate(sizes)]
    key = b"\x01\x9a\xff\x3c"
    whole = b"".join(parts)
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(whole))

    pieces = masked_frame_parts(parts, key)

    assert b"".join(pieces) == frame_header(len(whole), masked=True) + key + masked
    server = ServerProtocol(state=State.OPEN, max_size=None)
    server.receive_data(b"".join(pieces))
    assert _one_binary_frame(server.events_received()) == whole


def test_large_parts_are_masked_apart_and_small_neighbours_together() -> None:
    """A large part is a piece of its own (its bytes are not copied into a joined message);
    small parts beside it are joined, those at the start with the header, so a small
    message is one piece."""
    zero = b"\x00\x00\x00\x00"  # a zero key leaves the bytes as they are
    parts = [b"h" * 9, b"l" * 4, b"B" * 65536, b"e" * 9, b"f" * 3]

    pieces = masked_frame_parts(parts, zero)

    header = frame_header(65561, masked=True) + zero
    assert pieces == [header + b"h" * 9 + b"l" * 4, b"B" * 65536, b"e" * 9 + b"f" * 3]
    assert masked_frame_parts([b"small", b"message"], zero) == [
        frame_header(12, masked=True) + zero + b"smallmessage"
    ]


def test_mask_keys_take_each_drawn_byte_once_and_draw_again_when_used_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys are consecutive four-byte slices of what the system's entropy source gave, none
    used twice; a new draw comes only once a draw is used up."""
    draws: list[bytes] = []

    def urandom(size: int) -> bytes:
        draw = bytes((len(draws) * 31 + index) % 251 for index in range(size))
        draws.append(draw)
        return draw

    monkeypatch.setattr(websocket_frames.os, "urandom", urandom)
    keys = MaskKeys()

    drawn = [keys.next() for _ in range(1025)]

    assert len(draws) == 2
    assert b"".join(drawn) == draws[0] + draws[1][:4]
