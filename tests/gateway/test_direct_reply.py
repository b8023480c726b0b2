"""A whole reply written in one call through the request's direct writer, on a real server."""

import asyncio
import socket
import time
from typing import Any

import pytest

from inference_club.gateway.direct_body import direct_body
from tests.support.in_process import SERVER_DATE as DATE
from tests.support.in_process import Reply, read_reply, serving

BODY = b'{"object": "chat.completion"}'
JSON = [(b"content-type", b"application/json"), (b"x-ratelimit-limit-requests", b"60")]
BUSY_AFTER_WRITING = 0.5


def respond_app(headers: list[tuple[bytes, bytes]], written: list[bool]) -> Any:
    """Answers every request through ``respond``, noting whether it wrote; through ASGI
    (with a plain content type) when it would not."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        writer = direct_body(scope)
        assert writer is not None
        done = writer.respond(200, headers, BODY)
        written.append(done)
        if not done:
            safe = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]
            await send({"type": "http.response.start", "status": 200, "headers": safe})
            await send({"type": "http.response.body", "body": BODY})

    return app


async def test_whole_replies_are_written_in_one_call_on_a_kept_alive_connection() -> None:
    """Status, the server's date, the reply's headers, its length and its body; the next
    request on the same connection is answered the same way."""
    written: list[bool] = []
    async with serving(respond_app(JSON, written)) as port:

        def fetch_twice() -> list[Reply]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                replies = []
                for _ in range(2):
                    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
                    replies.append(read_reply(client))
                return replies

        replies = await asyncio.to_thread(fetch_twice)

    assert written == [True, True]
    for status, headers, body, extra in replies:
        assert status == b"HTTP/1.1 200 OK"
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"x-ratelimit-limit-requests"] == b"60"
        assert headers[b"content-length"] == b"%d" % len(BODY)
        assert headers[b"date"] == DATE
        assert b"connection" not in headers
        assert (body, extra) == (BODY, b"")


async def test_a_client_that_asks_to_close_gets_the_reply_then_the_close() -> None:
    written: list[bool] = []
    async with serving(respond_app(JSON, written)) as port:

        def fetch() -> tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                received = b""
                while chunk := client.recv(65536):
                    received += chunk
                _, headers, body, _ = read_reply(client, received)
                return headers[b"connection"], body

        connection, body = await asyncio.to_thread(fetch)

    assert written == [True]
    assert (connection, body) == (b"close", BODY)


async def test_a_header_with_a_line_break_is_never_written_directly() -> None:
    """A value that would split the head is refused with nothing written; the reply then
    goes through ASGI."""
    smuggling = [(b"content-type", b"application/json\r\nset-cookie: stolen=1")]
    written: list[bool] = []
    async with serving(respond_app(smuggling, written)) as port:

        def fetch() -> tuple[dict[bytes, bytes], bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
                _, headers, body, _ = read_reply(client)
                return headers, body

        headers, body = await asyncio.to_thread(fetch)

    assert written == [False]
    assert b"set-cookie" not in headers
    assert (headers[b"content-type"], body) == (b"text/plain", BODY)


@pytest.mark.parametrize(
    ("value", "direct"),
    [
        (b"a\x00b", False),
        (b"a\x08b", False),
        (b"a\x0bb", False),
        (b"a\x0cb", False),
        (b"a\x1fb", False),
        (b"a\x7fb", False),
        (b"a\tb", True),
        (b"a~b\x80", True),
    ],
)
async def test_only_a_header_free_of_control_bytes_is_written_directly(
    value: bytes, direct: bool
) -> None:
    """Any control byte but a tab keeps a reply from the direct writer (ASGI sends it, or
    refuses it); a tab and bytes above the ASCII range do not."""
    written: list[bool] = []
    async with serving(respond_app([(b"x-note", value)], written)) as port:

        def fetch() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
                return read_reply(client)[2]

        body = await asyncio.to_thread(fetch)

    assert written == [direct]
    assert body == BODY


async def test_a_reply_written_directly_leaves_before_the_work_after_it() -> None:
    """The reply is on the socket before the app's bookkeeping after it ends the turn."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        writer = direct_body(scope)
        assert writer is not None
        assert writer.respond(200, JSON, BODY)
        time.sleep(BUSY_AFTER_WRITING)  # noqa: ASYNC251 - the loop is kept busy on purpose

    async with serving(app) as port:

        def fetch() -> float:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
                sent = time.monotonic()
                read_reply(client)
                return time.monotonic() - sent

        elapsed = await asyncio.to_thread(fetch)

    assert elapsed < BUSY_AFTER_WRITING / 2
