"""What every demo server shares: the OpenAI error envelope, the CLI flags and the run loop."""

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# OpenAI's upload limit is 25 MB; leave room for the multipart envelope around the file.
MAX_REQUEST_BYTES = 26 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where a demo server listens; port 0 asks the OS for a free one."""

    host: str = "127.0.0.1"
    port: int = 0


class RequestError(Exception):
    """A request the server refuses; rendered as the OpenAI error envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.error_type = error_type


def error_response(error: RequestError) -> web.Response:
    """The ``{"error": {message, type, param, code}}`` body OpenAI clients expect."""
    body = {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }
    return web.json_response(body, status=error.status)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn refusals and aiohttp's own HTTP errors (404, 405, 413) into the OpenAI envelope."""
    try:
        return await handler(request)
    except RequestError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = "server_error" if exc.status >= 500 else "invalid_request_error"
        return error_response(RequestError(exc.reason, status=exc.status, error_type=error_type))


def new_application() -> web.Application:
    """An aiohttp application with the error middleware and an upload limit like OpenAI's."""
    return web.Application(middlewares=[openai_errors], client_max_size=MAX_REQUEST_BYTES)


def models_response(model_id: str, **extra: Any) -> web.Response:
    """The ``GET /v1/models`` list with one model owned by ``demo``."""
    model = {"id": model_id, "object": "model", "created": 0, "owned_by": "demo", **extra}
    return web.json_response({"object": "list", "data": [model]})


def listening_line(host: str, port: int) -> str:
    """The one stdout line that tells a parent process where to reach the server."""
    return f"listening on http://{host}:{port}/v1"


def argument_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the ``--host`` and ``--port`` flags every demo server takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)"
    )
    return parser


async def serve_until_stopped(app: web.Application, address: ListenAddress) -> None:
    """Serve ``app``, print the listening line, and return on SIGTERM or SIGINT."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address.host, address.port)
        try:
            await site.start()
        except OSError as exc:
            message = f"cannot listen on {address.host}:{address.port}: {exc.strerror}"
            raise SystemExit(message) from exc
        port = runner.addresses[0][1]
        print(listening_line(address.host, port), flush=True)
        await _wait_for_stop_signal()
    finally:
        await runner.cleanup()


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Windows event loops have no signal handlers; Ctrl+C still ends asyncio.run there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def run(app: web.Application, address: ListenAddress) -> int:
    """Run ``app`` until stopped; the exit code for a CLI ``main``."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_until_stopped(app, address))
    return 0
