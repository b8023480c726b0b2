"""Requests an app takes before their task starts (``DirectRequests``), on a real server."""

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from inference_club.gateway.direct_body import direct_body
from tests.support.in_process import read_reply, serving


def post(body: bytes) -> bytes:
    return b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


class TakingApp:
    """Takes every POST directly and treats it as ``mode`` says; what is not taken, or is
    handed back, its ASGI side serves, noting what it read."""

    def __init__(self, mode: str, delay: float = 0.05) -> None:
        self.mode = mode
        self.delay = delay
        self.started: list[bytes] = []
        self.left: list[bytes] = []
        self.via_task: list[bytes] = []

    def direct_request(
        self,
        cycle: RequestResponseCycle,
        start_task: Callable[[Any], None],
        on_done: Callable[[], None],
    ) -> "Taken | None":
        if cycle.scope["method"] != "POST":
            return None
        return Taken(self, cycle, start_task, on_done)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await self.reply(receive, send, b"task:")

    async def reply(self, receive: Any, send: Any, prefix: bytes) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.via_task.append(b"(disconnect)")
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.via_task.append(body)
        reply = prefix + body
        length = [(b"content-length", b"%d" % len(reply))]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": reply})


class Taken:
    def __init__(
        self,
        app: TakingApp,
        cycle: RequestResponseCycle,
        start_task: Callable[[Any], None],
        on_done: Callable[[], None],
    ) -> None:
        self.app = app
        self.cycle = cycle
        self.start_task = start_task
        self.on_done = on_done

    def start(self) -> bool:
        body = bytes(self.cycle.body)
        self.app.started.append(body)
        loop = asyncio.get_running_loop()
        match self.app.mode:
            case "answer":
                self.answer(body)
            case "answer later":
                loop.call_later(self.app.delay, self.answer, body)
            case "hand over":
                loop.call_later(self.app.delay, self.hand_over)
            case "decline":
                return False
        return True

    def answer(self, body: bytes) -> None:
        self.on_done()
        writer = direct_body(self.cycle.scope)  # type: ignore[arg-type]
        assert writer is not None
        assert writer.respond(200, [], b"direct:" + body)

    def hand_over(self) -> None:
        self.on_done()
        self.start_task(lambda _scope, receive, send: self.app.reply(receive, send, b"later:"))

    def client_left(self) -> None:
        self.app.left.append(bytes(self.cycle.body))


async def exchange(port: int, *writes: tuple[bytes, int]) -> list[bytes]:
    """On one connection, each write followed by reading its number of replies' bodies."""

    def run() -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            bodies, rest = [], b""
            for requests, replies in writes:
                client.sendall(requests)
                for _ in range(replies):
                    status, _headers, body, rest = read_reply(client, rest)
                    assert status == b"HTTP/1.1 200 OK"
                    bodies.append(body)
            return bodies

    return await asyncio.to_thread(run)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def test_a_taken_request_is_answered_without_a_task() -> None:
    """Two requests on one connection, each started once its body is in and answered by
    the app's direct side; its ASGI side never runs."""
    app = TakingApp("answer")
    async with serving(app) as port:
        bodies = await exchange(port, (post(b"one"), 1), (post(b"two"), 1))
    assert bodies == [b"direct:one", b"direct:two"]
    assert app.started == [b"one", b"two"]
    assert app.via_task == []


async def test_a_declined_request_gets_its_task_with_the_whole_body() -> None:
    app = TakingApp("decline")
    async with serving(app) as port:
        assert await exchange(port, (post(b"hello"), 1)) == [b"task:hello"]
    assert app.started == [b"hello"]
    assert app.via_task == [b"hello"]


async def test_a_taken_request_can_go_on_in_a_task() -> None:
    """The app hands the request to a task of its own later; the task reads the body the
    protocol kept and answers through ASGI."""
    app = TakingApp("hand over")
    async with serving(app) as port:
        assert await exchange(port, (post(b"hello"), 1)) == [b"later:hello"]
    assert app.via_task == [b"hello"]


async def test_requests_pipelined_behind_a_taken_one_keep_their_order() -> None:
    """The second request arrives while the first waits for its answer; it is answered
    after the first, by its task (its body was in before its turn came)."""
    app = TakingApp("answer later", delay=0.2)
    async with serving(app) as port:
        bodies = await exchange(port, (post(b"one") + post(b"two"), 2))
    assert bodies == [b"direct:one", b"task:two"]
    assert app.started == [b"one"]


async def test_a_client_gone_before_its_body_is_in_gets_the_task_that_meters_it() -> None:
    """Nothing was started; the request's task runs as it would have and sees the client
    leave (on /v1 that task leaves the usage record)."""
    app = TakingApp("answer")
    async with serving(app) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc")
            await asyncio.sleep(0.1)
        await until(lambda: app.via_task == [b"(disconnect)"])
    assert app.started == []


async def test_a_client_gone_from_a_taken_request_is_told() -> None:
    app = TakingApp("answer later", delay=30)
    async with serving(app) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(post(b"waiting"))
            await until(lambda: app.started == [b"waiting"])
        await until(lambda: app.left == [b"waiting"])
    assert app.via_task == []
