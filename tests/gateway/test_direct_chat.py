"""Non-streamed chats the gateway answers from its callbacks, and what hands them to a task.

Every other chat test passes through the same path; these cover what only it does: the
connection's order of replies, a client that leaves while the reply is awaited, and a reply
too large to arrive in one tunnel message.
"""

import asyncio
import socket
import time

import openai
import orjson

from tests.support.in_process import read_reply
from tests.support.processes import Gateway
from tests.support.usage import chat_records


def chat_request(key: str, content: str) -> bytes:
    body = orjson.dumps({"model": "fake-llm", "messages": [{"role": "user", "content": content}]})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def port_of(gateway: Gateway) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


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
