"""Real processes on 127.0.0.1 for tests: the gateway, the agent and admin commands."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "inference_club.cli.main"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(*args: str, data: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one ``inference-club`` command against ``data`` and return its result."""
    result = subprocess.run(
        [*CLI, *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
    )
    if check and result.returncode != 0:
        msg = f"inference-club {' '.join(args)} failed: {result.stderr}"
        raise AssertionError(msg)
    return result


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_CLUB_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """A child process whose output goes to a log file we can read on failure."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process and wait for it."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        """Kill the process at once, as a crash or a pulled cable would."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def spawn(args: list[str], log_path: Path) -> Process:
    """Start ``args`` with output to ``log_path``."""
    log = log_path.open("wb")
    popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env())  # noqa: S603
    return Process(popen, log_path)


@dataclass
class Gateway:
    """A running ``inference-club serve``."""

    process: Process
    port: int
    data: Path
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        """Base URL of the OpenAI API."""
        return f"{self.url}/v1"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an admin command on this gateway's data directory."""
        return cli(*args, data=self.data, check=check)

    def add_user(self, name: str) -> str:
        """Create a user and return a fresh API key for them."""
        self.cli("users", "add", name)
        return self.cli("keys", "create", name).stdout.strip()

    def add_provider(self, owner: str, name: str) -> str:
        """Create a provider and return its token."""
        return self.cli("providers", "add", owner, name).stdout.strip()


def start_gateway(tmp: Path, *extra: str) -> Gateway:
    """Start a gateway on a free port with its data in ``tmp`` and wait until it answers."""
    port = free_port()
    data = tmp / "data"
    process = spawn(
        [*CLI, "serve", "--port", str(port), "--data", str(data), *extra],
        tmp / f"gateway-{port}.log",
    )
    gateway = Gateway(process, port, data, list(extra))
    wait_until_http(f"{gateway.url}/healthz", process)
    return gateway


def start_agent(
    tmp: Path, gateway_url: str, token: str, *backends: str, extra: tuple[str, ...] = ()
) -> Process:
    """Start an agent for ``backends`` (OpenAI base URLs)."""
    args = [*CLI, "agent", "--server", gateway_url, "--token", token]
    for backend in backends:
        args += ["--backend", backend]
    return spawn([*args, *extra], tmp / f"agent-{time.monotonic_ns()}.log")


def wait_until_http(url: str, process: Process, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            msg = f"process exited with {process.popen.returncode}:\n{process.log()}"
            raise AssertionError(msg)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    msg = f"{url} did not answer within {timeout} s:\n{process.log()}"
    raise AssertionError(msg)


def wait_for_models(
    v1: str, key: str, expected: set[str], timeout: float = 20.0, providers: int = 1
) -> list[dict[str, object]]:
    """Poll ``/v1/models`` until exactly ``expected`` ids are listed, each by ``providers``."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        response = httpx.get(f"{v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        data: list[dict[str, object]] = response.json().get("data", [])
        seen = {str(model["id"]) for model in data}
        enough = all(len(model.get("providers") or []) >= providers for model in data)  # type: ignore[arg-type]
        if seen == expected and enough:
            return data
        time.sleep(0.05)
    msg = f"models {sorted(seen)} never became {sorted(expected)}"
    raise AssertionError(msg)
