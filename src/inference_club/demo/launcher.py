"""Start a demo server as a child process on a free port and learn where it listens."""

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

LISTENING_PREFIX = "listening on "
DEMO_SERVERS = ("llm_server", "tts_server", "stt_server", "image_server")


class DemoServerError(RuntimeError):
    """A demo server exited or stayed silent before saying where it listens."""


@dataclass(frozen=True, slots=True)
class DemoServer:
    """A running demo server process and its OpenAI base URL (ending in ``/v1``)."""

    process: subprocess.Popen[str]
    base_url: str

    def stop(self, timeout: float = 10.0) -> int:
        """Ask the server to stop (SIGTERM), kill it if it lingers; its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_demo_server(name: str, *args: str, timeout: float = 60.0) -> DemoServer:
    """Run ``python -m inference_club.demo.<name> --port 0 ARGS`` and wait for its address."""
    if name not in DEMO_SERVERS:
        msg = f"unknown demo server {name!r}; one of {', '.join(DEMO_SERVERS)}"
        raise ValueError(msg)
    command = [sys.executable, "-m", f"inference_club.demo.{name}", "--port", "0", *args]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        command, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    # A reader thread keeps the pipe drained for the server's whole life, so it never blocks.
    threading.Thread(target=_forward_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        base_url = _await_listening_line(lines, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return DemoServer(process=process, base_url=base_url)


@contextmanager
def running_demo_server(name: str, *args: str, timeout: float = 60.0) -> Iterator[DemoServer]:
    """:func:`start_demo_server` as a context manager that stops the server on exit."""
    server = start_demo_server(name, *args, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def _forward_lines(stream: IO[str], lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _await_listening_line(lines: "queue.Queue[str | None]", timeout: float) -> str:
    try:
        while (line := lines.get(timeout=timeout)) is not None:
            if line.startswith(LISTENING_PREFIX):
                return line.removeprefix(LISTENING_PREFIX).strip()
    except queue.Empty:
        msg = f"the demo server did not say where it listens within {timeout:.0f} s"
        raise DemoServerError(msg) from None
    msg = "the demo server exited before it was ready"
    raise DemoServerError(msg)
