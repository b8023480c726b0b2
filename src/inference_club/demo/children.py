"""Child processes of the demo: each in its own process group, its output in a log file."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.05


class ChildExited(RuntimeError):
    """A child process ended when it should still be running."""

    def __init__(self, child: "Child") -> None:
        super().__init__(f"the {child.name} exited with code {child.exit_code()}")
        self.child = child


class StopRequested(Exception):
    """The person running the demo asked it to stop (Ctrl-C or SIGTERM) while it waited."""


@dataclass(frozen=True, slots=True)
class Child:
    """A running child process; ``name`` says what it is, for people reading messages."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The operating system's id of the process."""
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.process.poll()

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def last_lines(self, count: int = 20) -> list[str]:
        """The last ``count`` non-empty lines of its output."""
        return [line for line in self.log_text().splitlines() if line.strip()][-count:]

    def signal_stop(self) -> None:
        """Ask the whole process group to stop, without waiting."""
        if sys.platform == "win32":
            if self.process.poll() is None:
                self.process.terminate()
        else:
            _signal_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """End the process group at once."""
        if sys.platform == "win32":
            if self.process.poll() is None:
                self.process.kill()
        else:
            _signal_group(self.pid, signal.SIGKILL)


def spawn(name: str, command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> Child:
    """Start ``command`` in a new process group with stdout and stderr going to ``log_path``.

    Its own group keeps a terminal's Ctrl-C away from it, so the demo stops its children in
    order, and lets the demo end any process a child started in turn.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        if sys.platform == "win32":
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules, no shell
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
            )
        else:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules, no shell
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
    return Child(name=name, process=process, log_path=log_path)


def wait_for_line(
    child: Child,
    prefix: str,
    *,
    timeout: float,
    stop_requested: Callable[[], bool],
) -> str:
    """The rest of the first output line starting with ``prefix``, once the child prints it.

    Raises ChildExited if the child ends first, TimeoutError after ``timeout`` seconds and
    StopRequested when ``stop_requested()`` turns true.
    """
    deadline = time.monotonic() + timeout
    while True:
        for line in child.log_text().splitlines():
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
        if child.exit_code() is not None:
            raise ChildExited(child)
        if stop_requested():
            raise StopRequested
        if time.monotonic() > deadline:
            msg = f"the {child.name} did not start within {timeout:.0f} s"
            raise TimeoutError(msg)
        time.sleep(POLL_SECONDS)


def stop_all(children: Iterable[Child], timeout: float = 10.0) -> None:
    """Ask every child to stop, wait up to ``timeout`` seconds in all, then kill what is left.

    Every group is signalled again at the end, so a grandchild that outlived its parent goes too.
    """
    children = list(children)
    for child in children:
        child.signal_stop()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.process.wait()
    for child in children:
        child.kill()


def _signal_group(pgid: int, signum: int) -> None:
    # The group outlives its leader while any member runs; a group with no one left is fine.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
