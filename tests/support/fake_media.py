"""A fake OpenAI-compatible audio and image server on real HTTP, recording what it was sent.

Transcriptions answer a fixed text (and a deliberately wrong ``duration``, so tests see the
gateway's own measurement win). Speech answers ``speech_audio`` unless the input is
``"send mp3"``. Images answer as ``image_mode`` says: ``url`` (links on this server, which the
agent must inline), ``b64`` or ``garbage`` (base64 of text).
"""

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TRANSCRIPT = "the quick brown fox"
# An MPEG audio frame header: what a backend ignoring response_format might send.
MP3_BYTES = b"\xff\xfb\x90\x64" + bytes(400)


@dataclass
class FakeMedia:
    """A running fake media server; ``requests`` holds one dict per request it handled."""

    models: list[str]
    speech_audio: bytes = b""
    image_png: bytes = b""
    image_mode: str = "url"
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL of this server."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeMedia":
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
            msg = "fake media server did not start"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def last(self, path: str) -> dict[str, Any]:
        """The most recent request to ``path``."""
        return next(r for r in reversed(self.requests) if r["_path"] == path)

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/images/generations", self._generate)
        app.router.add_post("/v1/images/edits", self._edit)
        app.router.add_get("/v1/files/{name}", self._file)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - the bound port of an ephemeral site
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _models(self, _request: web.Request) -> web.Response:
        data = [{"id": model, "object": "model", "owned_by": "fake"} for model in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _form(self, request: web.Request) -> dict[str, Any]:
        form = await request.post()
        seen: dict[str, Any] = {"_path": request.path, "_headers": dict(request.headers)}
        for name in form:
            values = form.getall(name)
            for value in values:
                if isinstance(value, web.FileField):
                    seen[name] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": value.file.read(),
                    }
                else:
                    seen[name] = values if len(values) > 1 else value
        self.requests.append(seen)
        return seen

    async def _transcribe(self, request: web.Request) -> web.Response:
        seen = await self._form(request)
        response_format = seen.get("response_format", "json")
        if response_format == "text":
            return web.Response(text=TRANSCRIPT + "\n")
        body: dict[str, Any] = {"text": TRANSCRIPT}
        if response_format == "verbose_json":
            granularities = seen.get("timestamp_granularities[]", [])
            body.update(task="transcribe", language="english", duration=99.0)
            if "word" in granularities:
                body["words"] = [{"word": "the", "start": 0.0, "end": 0.2}]
        return web.json_response(body)

    async def _speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({**body, "_path": request.path})
        if body.get("input") == "send mp3":
            return web.Response(body=MP3_BYTES, content_type="audio/mpeg")
        return web.Response(body=self.speech_audio, content_type="audio/wav")

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({**body, "_path": request.path})
        return self._images(int(body.get("n", 1)))

    async def _edit(self, request: web.Request) -> web.Response:
        seen = await self._form(request)
        return self._images(int(seen.get("n", 1)))

    def _images(self, count: int) -> web.Response:
        if self.image_mode == "garbage":
            item = {"b64_json": base64.b64encode(b"<html>not an image</html>").decode()}
        elif self.image_mode == "b64":
            item = {"b64_json": base64.b64encode(self.image_png).decode()}
        else:
            # A path on this server, as local image servers often answer.
            item = {"url": "/v1/files/picture.png", "revised_prompt": "a revised prompt"}
        return web.json_response({"created": int(time.time()), "data": [item] * count})

    async def _file(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.image_png, content_type="image/png")


def write_agent_config(
    path: Path, backends: list[tuple[str, str]], models: dict[str, dict[str, Any]]
) -> Path:
    """An agent config: ``backends`` as (url, service type), per-model settings in ``models``."""
    lines: list[str] = []
    for url, service_type in backends:
        lines += ["[[backends]]", f'url = "{url}"', f'service_type = "{service_type}"', ""]
    for model, settings in models.items():
        lines.append(f'[models."{model}"]')
        for key, value in settings.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)
