"""Plain binary frames read straight from a client's bytes; everything else left whole."""

import pytest
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from inference_club.gateway.client_frames import NOT_PLAIN, ClientFrames
from inference_club.protocol.websocket_frames import frame_header

# One of each header length: 7-bit, 16-bit and 64-bit.
SIZES = (0, 1, 125, 126, 65535, 65536, 70001)


def _client() -> ClientProtocol:
    """A websockets client past its handshake, to write frames exactly as a real one would."""
    return ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)


def _payload(size: int) -> bytes:
    return bytes((index * 7 + size) % 256 for index in range(size))


def _wire(client: ClientProtocol) -> bytes:
    return b"".join(client.data_to_send())


def test_frames_of_every_length_come_out_whole_however_the_bytes_are_split() -> None:
    """Masked binary frames fed one byte at a time give their payloads, in order, once each
    is whole, and nothing before."""
    client = _client()
    payloads = [_payload(size) for size in SIZES]
    for payload in payloads:
        client.send_binary(payload)
    wire = _wire(client)
    frames = ClientFrames(max_size=1 << 20)

    received: list[bytes] = []
    for index in range(len(wire)):
        frames.feed(wire[index : index + 1])
        while (message := frames.next_message()) is not None:
            assert isinstance(message, bytes)
            received.append(message)

    assert received == payloads
    assert len(frames) == 0


@pytest.mark.parametrize(
    "write",
    [
        lambda client: client.send_text(b"text"),
        lambda client: client.send_ping(b"ping"),
        lambda client: client.send_close(1000, "bye"),
        lambda client: client.send_binary(b"first part", fin=False),
        lambda client: client.send_binary(_payload(2048)),  # over this reader's limit
    ],
    ids=["text", "ping", "close", "fragment", "too large"],
)
def test_any_other_frame_is_left_whole_for_the_general_parser(write) -> None:  # type: ignore[no-untyped-def]
    """A frame that is not a plain binary one stops the reading: it and everything after it
    are handed back untouched, after the plain frames before it."""
    client = _client()
    client.send_binary(b"before")
    before = _wire(client)
    write(client)
    rest = _wire(client)
    frames = ClientFrames(max_size=1024)
    frames.feed(before + rest)

    assert frames.next_message() == b"before"
    assert frames.next_message() is NOT_PLAIN
    assert frames.next_message() is NOT_PLAIN  # nothing was taken
    assert frames.take_rest() == rest
    assert len(frames) == 0


def test_an_unmasked_frame_is_left_for_the_general_parser() -> None:
    """A client must mask its frames; one that does not is not read here (websockets then
    fails the connection)."""
    frames = ClientFrames(max_size=None)
    frames.feed(frame_header(3) + b"abc")

    assert frames.next_message() is NOT_PLAIN


@pytest.mark.parametrize("read_size", [3, 14, 1000, 65536 + 7, 1 << 20])
def test_frames_split_across_reads_of_any_size_come_out_whole_and_in_order(read_size: int) -> None:
    """Reads that hold whole frames, a frame's start, its middle or its end (and headers
    split anywhere) give every payload once, in order, and nothing is left over."""
    client = _client()
    payloads = [_payload(size) for size in (*SIZES, 3, 70001, 0, 126)]
    for payload in payloads:
        client.send_binary(payload)
    wire = _wire(client)
    frames = ClientFrames(max_size=1 << 20)

    received: list[bytes] = []
    for start in range(0, len(wire), read_size):
        frames.feed(wire[start : start + read_size])
        while (message := frames.next_message()) is not None:
            assert isinstance(message, bytes)
            received.append(message)

    assert received == payloads
    assert len(frames) == 0


def test_bytes_fed_twice_before_reading_are_read_in_order() -> None:
    """A second read fed before the first was taken joins it: nothing is lost or reordered."""
    client = _client()
    payloads = [_payload(size) for size in (5, 70001, 126)]
    for payload in payloads:
        client.send_binary(payload)
    wire = _wire(client)
    frames = ClientFrames(max_size=None)

    frames.feed(wire[:100])
    frames.feed(wire[100:70000])
    first = frames.next_message()
    frames.feed(wire[70000:])
    rest = [frames.next_message(), frames.next_message()]

    assert [first, *rest] == payloads
    assert frames.next_message() is None
    assert len(frames) == 0


def test_a_frame_that_is_not_plain_after_a_split_one_is_handed_back_whole() -> None:
    """A plain frame completed from a later read, then a ping in that read: the ping and
    what follows it go back to the general parser untouched."""
    client = _client()
    client.send_binary(_payload(3000))
    plain = _wire(client)
    client.send_ping(b"ping")
    client.send_binary(b"after")
    rest = _wire(client)
    frames = ClientFrames(max_size=None)

    frames.feed(plain[:1000])
    assert frames.next_message() is None
    assert len(frames) == 1000
    frames.feed(plain[1000:] + rest)

    assert frames.next_message() == _payload(3000)
    assert frames.next_message() is NOT_PLAIN
    assert frames.take_rest() == rest
