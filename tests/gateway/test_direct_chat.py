"""Chats the gateway sends from its callbacks, and what hands them to a task.

Every other chat test passes through the same path; these cover what only it does: the
connection's order of replies, a client that leaves while the reply is awaited, a reply too
large to arrive in one tunnel message, and streams, which the same callbacks relay and end.
"""

import asyncio
import socket
import time

import openai
import orjson

from tests.support.in_process import read_reply
from tests.support.processes import Gateway
from tests.support.usage import chat_records


def chat_request(key: str, content: str, *, stream: bool = False) -> bytes:
    fields = {"model": "fake-llm", "messages": [{"role": "user", "content": content}]}
    body = orjson.dumps({**fields, "stream": True} if stream else fields)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def port_of(gateway: Gateway) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


def read_chunked_reply(client: socket.socket) -> tuple[bytes, dict[bytes, bytes], bytes, bytes]:
    """Status line, headers, the chunked body decoded, and what followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _received(client)
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    assert headers[b"transfer-encoding"] == b"chunked"
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += _received(client)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += _received(client)
        body, rest = body + rest[:size], rest[size + 2 :]
        if size == 0:
            return status, headers, body, rest


def _received(client: socket.socket) -> bytes:
    chunk = client.recv(65536)
    assert chunk, "the connection closed inside a reply"
    return chunk


def test_pipelined_chats_are_answered_in_order(gateway: Gateway, key: str) -> None:
    """Three requests in one write: each reply answers its own request, in order."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as client:
        client.sendall(b"".join(chat_request(key, word) for word in ("sleep:0.3", "b", "c")))
        contents, rest = [], b""
        for _ in range(3):
            status, headers, body, rest = read_reply(client, rest)
            assert status == b"HTTP/1.1 200 OK"
            assert headers[b"x-queue-position"] == b"0"
            contents.append(orjson.loads(body)["choices"][0]["message"]["content"])
    assert contents == [
        "echo from fake: sleep:0.3",
        "echo from fake: b",
        "echo from fake: c",
    ]


def test_a_client_leaving_while_the_reply_is_awaited_is_metered(gateway: Gateway, key: str) -> None:
    """The usage record says the client left (499); the provider's slot is free again."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as client:
        client.sendall(chat_request(key, "sleep:3"))
        time.sleep(0.5)
    [record] = asyncio.run(chat_records(gateway.data, 1))
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    assert record.provider_id is not None
    sdk = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=10)
    reply = sdk.chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "after"}]
    )
    assert reply.choices[0].message.content == "echo from fake: after"


def test_a_reply_larger_than_one_tunnel_window_arrives_whole(gateway: Gateway, key: str) -> None:
    """400,000 characters: more than the agent may send before the gateway grants credit."""
    sdk = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30)
    reply = sdk.chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "big:400000"}]
    )
    assert reply.choices[0].message.content == "x" * 400_000
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3
    [record] = asyncio.run(chat_records(gateway.data, 1))
    assert (record.status_code, record.completion_tokens) == (200, 3)


def test_a_stream_and_a_chat_pipelined_are_answered_in_order(gateway: Gateway, key: str) -> None:
    """A stream, then a whole reply on the same connection: every event of the stream and its
    end go out before the next request is answered."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as client:
        client.sendall(chat_request(key, "first", stream=True) + chat_request(key, "second"))
        status, headers, events, rest = read_chunked_reply(client)
        assert status == b"HTTP/1.1 200 OK"
        assert headers[b"content-type"].startswith(b"text/event-stream")
        status, _headers, body, _rest = read_reply(client, rest)
    data = [line for line in events.split(b"\n\n") if line]
    assert data[-1] == b"data: [DONE]"
    chunks = [orjson.loads(line.removeprefix(b"data: ")) for line in data[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == (
        "tok0 tok1 tok2 tok3 tok4 "
    )
    # The usage chunk the gateway asked for is kept from a client that did not ask for it.
    assert all("usage" not in c for c in chunks)
    assert status == b"HTTP/1.1 200 OK"
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "echo from fake: second"
    first, second = asyncio.run(chat_records(gateway.data, 2))
    assert {first.completion_tokens, second.completion_tokens} == {5, 3}


def test_a_client_leaving_mid_stream_is_metered(gateway: Gateway, key: str) -> None:
    """A client that reads the head and a chunk of a stream, then leaves: a 499 record."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as client:
        client.sendall(chat_request(key, "slow", stream=True))
        seen = b""
        while b"tok0" not in seen:
            seen += _received(client)
    [record] = asyncio.run(chat_records(gateway.data, 1))
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    assert record.provider_id is not None
