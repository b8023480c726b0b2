"""A fake OpenAI-compatible model server on real HTTP, for what a tiny model cannot show.

Behaviour is chosen by the last message (or the prompt) of each request:
``fail`` answers 500, ``hang`` never answers, ``drop`` streams two chunks then cuts the
connection, ``slow`` streams 20 chunks 100 ms apart, ``flood:N`` streams N chunks of about
1 KB as fast as it may, ``sleep:S`` answers after S seconds; anything else is echoed.
"""

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class FakeBackend:
    """A running fake server; ``requests`` and ``disconnects`` record what it saw."""

    models: list[str]
    name: str = "fake"
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    # How many chunks each stream has written so far, and when it wrote its last byte
    # (time.monotonic()), by command.
    written: dict[str, int] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL of this backend."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeBackend":
        """Serve in a background thread until ``stop``."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            msg = "fake backend did not start"
            raise RuntimeError(msg)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server  # noqa: SLF001 - the bound port of an ephemeral site
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop serving; connections are cut. Stopping twice is harmless."""
        if self._loop is None or self._runner is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        # Handlers still sleeping (the "hang" behaviour) are cancelled, not left pending.
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _models(self, _request: web.Request) -> web.Response:
        data = [{"id": model, "object": "model", "owned_by": "fake"} for model in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        body["_path"] = request.path
        body["_headers"] = dict(request.headers)
        self.requests.append(body)
        command = _command(body)
        if command == "fail":
            return web.json_response(
                {"error": {"message": "model exploded", "type": "server_error"}}, status=500
            )
        if command == "hang":
            await asyncio.sleep(60)
        if command.startswith("sleep:"):
            await asyncio.sleep(float(command.removeprefix("sleep:")))
        if command.startswith("big:") and not body.get("stream"):
            # A reply of that many characters, larger than one tunnel message can carry.
            text = "x" * int(command.removeprefix("big:"))
            return web.json_response(_completion(body, text))
        if not body.get("stream") and request.path == "/v1/completions":
            return web.json_response(
                _text_completion(body, f"completion from {self.name}: {command}")
            )
        if not body.get("stream"):
            return web.json_response(_completion(body, f"echo from {self.name}: {command}"))
        return await self._stream(request, body, command)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], command: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        count, interval = (20, 0.1) if command == "slow" else (5, 0.0)
        padding = ""
        if command.startswith("flood:"):
            count, padding = int(command.removeprefix("flood:")), "x" * 1000
        try:
            for index in range(count):
                if command == "drop" and index == 2:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                chunk = _chunk(body, f"tok{index} {padding}")
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                self.written[command] = index + 1
                if interval:
                    await asyncio.sleep(interval)
            final = _chunk(body, "", finish="stop")
            await response.write(b"data: " + orjson.dumps(final) + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                usage_chunk = {**_chunk(body, ""), "choices": [], "usage": _usage(count)}
                await response.write(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects.append(command)
            raise
        await response.write_eof()
        self.finished[command] = time.monotonic()
        return response


def _command(body: dict[str, Any]) -> str:
    if "messages" in body:
        content = body["messages"][-1].get("content", "")
        return content if isinstance(content, str) else "parts"
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else "batch"


def _usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": _usage(3),
    }


def _text_completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": _usage(3),
    }


def _chunk(body: dict[str, Any], text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
