"""The paths to the same mock: direct, gateway plus agent, the LiteLLM proxy, and a bare relay."""

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.httpwire import Endpoint
from bench.media import IMAGE_MODEL, TTS_MODEL, VOICE
from bench.mock_backend import CHAT_MODEL, SLOW_MODEL, STT_MODEL, MockSettings
from bench.provision import read_tokens
from bench.services import (
    BENCH_ENV,
    PYTHON,
    Service,
    ServiceError,
    free_port,
    run_command,
    start_service,
    wait_until_ready,
)

LITELLM_REQUIREMENT = "litellm[proxy]==1.108.7"
BARE_RELAY = "bare-relay"
BENCH_USER = "bench"
BENCH_PROVIDER = "bench-home"
_CLI = (PYTHON, "-m", "inference_club.cli.main")
# Loopback traffic must never go through a proxy from the environment.
_NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
# What a process under test is started through, by its name (say, a profiler's command line).
Launcher = Callable[[str], Sequence[str]]
# A gateway's stores are the bench's choice, never the shell's: empty means the default
# (counters in memory, data in SQLite in its data folder).
_DEFAULT_STORES = {"INFERENCE_CLUB_REDIS_URL": "", "INFERENCE_CLUB_DATABASE_URL": ""}


@dataclass
class PathUnderTest:
    """One path under test: where to send requests and which processes serve it."""

    name: str
    endpoint: Endpoint | None = None
    services: list[Service] = field(default_factory=list)
    unavailable: str | None = None
    # Stops the path's processes and starts fresh ones (None: the path cannot be restarted).
    restart: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    # A yardstick, not a product: it takes part only in the latency, stream and rate scenarios.
    reference: bool = False

    def endpoint_or_fail(self) -> Endpoint:
        """The endpoint of a path that is running."""
        if self.endpoint is None:
            msg = f"{self.name} is not running"
            raise ServiceError(msg)
        return self.endpoint

    def pids(self) -> dict[str, int]:
        """The processes to meter, by name."""
        return {service.name: service.pid for service in self.services if service.running}

    async def stop(self) -> None:
        """Stop every process of this path, newest first."""
        for service in reversed(self.services):
            await service.stop()
        self.services.clear()


async def start_mock(settings: MockSettings, log_dir: Path) -> tuple[Service, Endpoint]:
    """The mock backend in its own process."""
    port = free_port()
    service = await start_service(
        "mock",
        [
            PYTHON,
            "-m",
            "bench.mock_backend",
            "--port",
            str(port),
            "--chunks",
            str(settings.default.chunks),
            "--interval-ms",
            str(settings.default.interval * 1000),
            "--slow-chunks",
            str(settings.slow.chunks),
            "--slow-interval-ms",
            str(settings.slow.interval * 1000),
            "--speech-bytes",
            str(settings.speech_bytes),
            "--image-bytes",
            str(settings.image_bytes),
        ],
        log_dir,
        env=BENCH_ENV,
    )
    endpoint = Endpoint("direct", "127.0.0.1", port)
    await wait_until_ready(service, endpoint, "/v1/models", 15)
    return service, endpoint


def _plain(_name: str) -> Sequence[str]:
    return ()


async def start_bare_relay(
    mock: Endpoint, log_dir: Path, *, launcher: Launcher = _plain, ready_within: float = 15
) -> PathUnderTest:
    """``bench.bare_relay``'s two processes in front of the mock; ServiceError if they fail."""
    path = PathUnderTest(BARE_RELAY, reference=True)
    port, tunnel_port = free_port(), free_port()
    relay = [PYTHON, "-m", "bench.bare_relay"]
    try:
        front_argv = [*relay, "front", "--port", str(port), "--tunnel-port", str(tunnel_port)]
        front = await start_service(
            "front", [*launcher("front"), *front_argv], log_dir, env=BENCH_ENV
        )
        path.services.append(front)
        endpoint = Endpoint(BARE_RELAY, "127.0.0.1", port)
        back_argv = [*launcher("back"), *relay, "back", "--tunnel-port", str(tunnel_port)]
        back_argv += ["--server-port", str(mock.port)]
        path.services.append(await start_service("back", back_argv, log_dir, env=BENCH_ENV))
        await wait_until_ready(front, endpoint, "/v1/models", ready_within)
    except BaseException:
        await path.stop()
        raise
    path.endpoint = endpoint
    return path


async def _cli_secret(args: list[str], data_dir: Path, env: dict[str, str]) -> str:
    """Run an admin command that prints a secret; returns it without ever logging it."""
    argv = [*_CLI, *args, "--data", str(data_dir)]
    code, out, err = await run_command(argv, env={**_NO_PROXY, **env})
    if code != 0:
        msg = f"`inference-club {' '.join(args[:2])}` failed (exit {code}): {err.strip()[-500:]}"
        raise ServiceError(msg)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Gateway:
    """The gateway path plus what the agent scenarios need: its data and the provider owner."""

    path: PathUnderTest
    data_dir: Path
    work_dir: Path
    log_dir: Path
    mock: Endpoint
    # More environment for its ``inference-club`` commands and ``serve`` (settings such as
    # the database's or Redis's URL, which may carry a secret, go this way, never in argv).
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def settings_env(self) -> dict[str, str]:
        """What its commands get on top of the bench's environment."""
        return {**_DEFAULT_STORES, **self.env}

    port: int = 0
    _key: str = field(default="", repr=False)
    _token: str = field(default="", repr=False)
    _limits_lifted: bool = False
    # What its gateway and agent are started through, and how long they may take to answer.
    launcher: Launcher = field(default=_plain, repr=False)
    ready_within: float = 60

    @property
    def tunnel_url(self) -> str:
        """Where agents dial in."""
        return f"ws://127.0.0.1:{self.port}/api/tunnel"

    async def provision(self, extra_providers: int = 0) -> None:
        """Create the bench user, its API key, the agent's token and ``extra_providers`` more.

        Everything is written before the gateway starts: while it runs, thousands of agents
        coming and going keep SQLite's write lock busy.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.settings_env
        await _cli_secret(["users", "add", BENCH_USER], self.data_dir, env)
        self._key = await _cli_secret(["keys", "create", BENCH_USER], self.data_dir, env)
        self._token = await _cli_secret(
            ["providers", "add", BENCH_USER, BENCH_PROVIDER], self.data_dir, env
        )
        if not self._key or not self._token:
            msg = "the CLI printed no API key or provider token"
            raise ServiceError(msg)
        await self.register_providers(extra_providers)

    async def register_providers(self, count: int) -> Path:
        """Lift the bench user's rate limits and make sure ``count`` extra tokens exist.

        Returns the file holding the tokens, one a line (made in bulk through the store).
        """
        tokens = self.work_dir / "sim-tokens"
        if self._limits_lifted and len(read_tokens(tokens, count)) >= count:
            return tokens
        argv = [PYTHON, "-m", "bench.provision", "--data", str(self.data_dir)]
        argv += ["--user", BENCH_USER, "--providers", str(count), "--tokens-out", str(tokens)]
        env = {**BENCH_ENV, **self.settings_env}
        code, _, err = await run_command(argv, env=env, timeout=900)
        if code != 0:
            msg = f"could not set up the bench user's providers: {err.strip()[-500:]}"
            raise ServiceError(msg)
        self._limits_lifted = True
        return tokens

    async def start(self) -> None:
        """Start the gateway, then the agent, and wait until the mock's models are listed."""
        self.port = free_port()
        serve = [*_CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        serve += ["--data", str(self.data_dir)]
        env = {**_NO_PROXY, **self.settings_env}
        gateway = await start_service(
            "gateway", [*self.launcher("gateway"), *serve], self.log_dir, env=env
        )
        self.path.services.append(gateway)
        endpoint = Endpoint("gateway", "127.0.0.1", self.port, self._key)
        await wait_until_ready(gateway, endpoint, "/v1/models", self.ready_within)
        config = self.work_dir / "agent.toml"
        config.write_text(_agent_config())
        command = [*_CLI, "agent", "--server", f"http://127.0.0.1:{self.port}"]
        command += ["--backend", f"http://127.0.0.1:{self.mock.port}/v1", "--config", str(config)]
        agent = await start_service(
            "agent",
            [*self.launcher("agent"), *command],
            self.log_dir,
            # The token goes by environment so it never shows in a process list.
            env={**_NO_PROXY, "INFERENCE_CLUB_TOKEN": self._token},
        )
        self.path.services.append(agent)
        try:
            listed = CHAT_MODEL.encode()
            within = self.ready_within
            await wait_until_ready(gateway, endpoint, "/v1/models", within, expect=listed)
        except ServiceError as exc:
            if not agent.running:
                msg = f"the agent exited ({agent.process.returncode}):\n{agent.log_tail()}"
                raise ServiceError(msg) from exc
            raise
        self.path.endpoint = endpoint

    async def restart(self) -> None:
        """A fresh gateway and agent, so a memory measurement starts from a clean heap."""
        await self.path.stop()
        self.path.endpoint = None
        await self.start()


def _agent_config() -> str:
    # High concurrency so the agent's own limits do not cap the streams scenarios.
    lines = []
    for model in (CHAT_MODEL, SLOW_MODEL):
        lines += [f'[models."{model}"]', "max_concurrency = 10000", ""]
    lines += [f'[models."{STT_MODEL}"]', 'service_type = "stt"', "max_concurrency = 64", ""]
    lines += [f'[models."{TTS_MODEL}"]', 'service_type = "tts"', f'voices = ["{VOICE}"]']
    lines += ["max_concurrency = 64", ""]
    lines += [f'[models."{IMAGE_MODEL}"]', 'service_type = "image"', "max_concurrency = 64", ""]
    return "\n".join(lines)


async def start_gateway(
    mock: Endpoint,
    work_dir: Path,
    log_dir: Path,
    extra_providers: int = 0,
    *,
    name: str = "gateway",
    env: dict[str, str] | None = None,
    launcher: Launcher = _plain,
    ready_within: float = 60,
) -> Gateway:
    """The gateway path, provisioned and running; ServiceError when it cannot be. ``env``
    holds settings for it and its admin commands (``INFERENCE_CLUB_*``); ``launcher`` what its
    gateway and agent are started through."""
    gateway = Gateway(
        PathUnderTest(name),
        work_dir / "gateway-data",
        work_dir,
        log_dir,
        mock,
        env or {},
        launcher=launcher,
        ready_within=ready_within,
    )
    await gateway.provision(extra_providers)
    try:
        await gateway.start()
    except BaseException:
        await gateway.path.stop()
        raise
    return gateway


async def install_litellm(venv: Path) -> Path:
    """A venv with the pinned LiteLLM proxy; returns its ``litellm`` executable."""
    executable = venv / "bin" / "litellm"
    if executable.exists():
        return executable
    code, _, err = await run_command([PYTHON, "-m", "venv", str(venv)], timeout=120)
    if code == 0:
        pip = str(venv / "bin" / "pip")
        code, _, err = await run_command(
            [pip, "install", "--quiet", "--disable-pip-version-check", LITELLM_REQUIREMENT],
            timeout=900,
        )
    if code != 0 or not executable.exists():
        # pip prints one warning per unused local index; only the real error helps.
        useful = [line for line in err.splitlines() if not line.startswith("WARNING:")]
        msg = f"could not install {LITELLM_REQUIREMENT}: {' '.join(useful[-5:])[-600:]}"
        raise ServiceError(msg)
    return executable


def _litellm_config(mock: Endpoint) -> str:
    base = f"http://127.0.0.1:{mock.port}/v1"
    lines = ["model_list:"]
    modes = {
        CHAT_MODEL: None,
        SLOW_MODEL: None,
        STT_MODEL: "audio_transcription",
        TTS_MODEL: "audio_speech",
        IMAGE_MODEL: "image_generation",
    }
    for model, mode in modes.items():
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {base}",
            "      api_key: mock",
        ]
        if mode is not None:
            lines += ["    model_info:", f"      mode: {mode}"]
    lines += [
        "general_settings:",
        "  master_key: os.environ/LITELLM_MASTER_KEY",
        "litellm_settings:",
        "  telemetry: false",
        # Its OpenAI image call refuses `response_format` for a model it does not know, and
        # the mock answers in base64 anyway. This drops only parameters LiteLLM does not
        # support for a model; the other scenarios send none.
        "  drop_params: true",
    ]
    return "\n".join(lines) + "\n"


async def start_litellm(mock: Endpoint, venv: Path, work_dir: Path, log_dir: Path) -> PathUnderTest:
    """The LiteLLM proxy in front of the mock; ServiceError when it cannot be installed or run."""
    path = PathUnderTest("litellm")
    executable = await install_litellm(venv)
    config = work_dir / "litellm.yaml"
    config.write_text(_litellm_config(mock))
    master_key = "sk-" + secrets.token_urlsafe(24)

    async def launch() -> None:
        port = free_port()
        service = await start_service(
            "litellm",
            [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            log_dir,
            env={
                **_NO_PROXY,
                "LITELLM_MASTER_KEY": master_key,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            },
        )
        path.services.append(service)
        endpoint = Endpoint("litellm", "127.0.0.1", port, master_key)
        try:
            await wait_until_ready(service, endpoint, "/v1/models", 180, expect=CHAT_MODEL.encode())
        except BaseException:
            await path.stop()
            raise
        path.endpoint = endpoint

    async def restart() -> None:
        await path.stop()
        path.endpoint = None
        await launch()

    await launch()
    path.restart = restart
    return path
