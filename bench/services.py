"""Child processes under test: start with logs to a file, wait until they answer, stop."""

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httptools

from bench.httpwire import Endpoint, build_request

PYTHON = sys.executable
# Children run ``python -m bench.*`` from wherever the runner was started.
BENCH_ENV = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


class ServiceError(Exception):
    """A process or path under test could not be started; the message says why."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def raise_open_file_limit() -> int:
    """Lift this process's (and so its children's) open-file limit to the hard limit."""
    import resource  # noqa: PLC0415 - POSIX only, like the whole benchmark

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Service:
    """One running child process, in its own process group so stopping it takes its children."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.returncode is None

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of the process's output, to explain a failure."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def start_service(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    stdin_pipe: bool = False,
) -> Service:
    """Start ``argv`` with stdout and stderr going to ``log_dir/<name>.log``."""
    log_path = log_dir / f"{name}.log"
    with _open_log(log_path) as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Service(name, process, log_path)


def _open_log(log_path: Path) -> BinaryIO:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return log_path.open("wb")


async def run_command(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> tuple[int, str, str]:
    """Run a short command to completion: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "", f"timed out after {timeout:g} s"
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


class _Collector:
    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


async def fetch(
    endpoint: Endpoint, path: str, method: str = "GET", body: bytes = b"", timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request on a fresh connection: status and whole body (for readiness checks)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        try:
            collector = _Collector()
            parser = httptools.HttpResponseParser(collector)
            writer.write(build_request(endpoint, method, path, body))
            while not collector.complete:
                data = await reader.read(65536)
                if not data:
                    break
                parser.feed_data(data)
            return parser.get_status_code(), bytes(collector.body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def wait_until_ready(
    service: Service, endpoint: Endpoint, path: str, timeout: float, expect: bytes = b""
) -> None:
    """Poll ``path`` until it answers 200 (with ``expect`` in the body), or explain why not."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not service.running:
            msg = (
                f"{service.name} exited with code {service.process.returncode} before it was "
                f"ready; last output:\n{service.log_tail()}"
            )
            raise ServiceError(msg)
        try:
            status, body = await fetch(endpoint, path)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and expect in body:
                return
            last = f"HTTP {status}: {body[:200].decode(errors='replace')}"
        await asyncio.sleep(0.2)
    msg = f"{service.name} not ready after {timeout:g} s ({last}); see {service.log_path}"
    raise ServiceError(msg)
