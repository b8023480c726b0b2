"""``inference-club agent``: run the agent that connects this machine's model servers to a club."""

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from inference_club.agent import AgentConfig, AgentSettings, build_settings, load_config
from inference_club.agent.config import LOG_LEVELS
from inference_club.agent.errors import ConfigError
from inference_club.allocator import keep_freed_memory
from inference_club.cli.logs import configure_logging
from inference_club.cli.options import env, fail
from inference_club.eventloop import event_loop_factory, shorten_gil_waits

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Connect the model servers on this machine to an inference-club gateway.

The agent dials out to the gateway over one WebSocket (no open port needed at home),
announces the models its local servers offer, and relays the gateway's requests to them.
It reconnects by itself, with backoff, whenever the connection drops.

Backends are OpenAI-compatible servers given by their base URL (llama.cpp, vLLM, Ollama,
LM Studio, whisper and TTS servers...). The agent asks each one for GET <url>/models
(every 30 seconds by default) and announces what it finds; a server that is down
announces nothing until it is back.
"""

_EPILOG = """\
examples:
  export INFERENCE_CLUB_TOKEN=...          # keeps the token out of `ps` and shell history
  inference-club agent --server https://club.example.org \\
      --backend http://127.0.0.1:8080/v1 --backend http://127.0.0.1:11434/v1

  inference-club agent --config agent.toml

config file (TOML; flags and env vars override it):
  server = "https://club.example.org"
  token = "..."
  log_level = "info"
  rediscover_interval = 30

  [[backends]]
  url = "http://127.0.0.1:8080/v1"
  api_key = "..."                    # sent to this server only
  [[backends]]
  url = "http://127.0.0.1:9000/v1"
  models = ["whisper-small"]         # for servers without GET /models
  service_type = "stt"               # llm | stt | tts | image (default llm)

  [models."qwen2.5-7b-instruct"]     # optional metadata per model id
  context_length = 32768
  max_concurrency = 4                # requests the gateway sends at once
  supported_features = ["tools"]
  input_modalities = ["text", "image"]
  share = ["network"]                # "private", "network" or "group:NAME"
  # voices = ["alloy"]               # tts: otherwise asked from GET <url>/audio/voices

Backends given with --backend come first when two servers offer the same model id;
a --backend URL that the file also lists gets the file's api_key and models.
"""


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``agent`` command."""
    parser = commands.add_parser(
        "agent",
        help="connect this machine's model servers to a gateway",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        default=env("SERVER"),
        help="the gateway, e.g. https://club.example.org (http(s):// or ws(s)://; "
        "the agent connects to <URL>/api/tunnel) (env INFERENCE_CLUB_SERVER)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=env("TOKEN"),
        help="this provider's token, shown once when the provider was created on the "
        "gateway (env INFERENCE_CLUB_TOKEN, preferred: a flag is visible to other users "
        "of this machine)",
    )
    parser.add_argument(
        "--backend",
        metavar="URL",
        action="append",
        default=None,
        help="OpenAI base URL of a local model server, e.g. http://127.0.0.1:8080/v1; "
        "repeat for several (env INFERENCE_CLUB_BACKENDS, comma-separated)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=env("AGENT_CONFIG"),
        help="TOML config file with backends, API keys and per-model metadata "
        "(env INFERENCE_CLUB_AGENT_CONFIG)",
    )
    parser.add_argument(
        "--rediscover-interval",
        metavar="SECONDS",
        type=float,
        default=env("REDISCOVER_INTERVAL"),
        help="how often to ask the backends for their models "
        "(env INFERENCE_CLUB_REDISCOVER_INTERVAL, default 30)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=env("LOG_LEVEL"),
        help="how much to log; info logs one line per request, never bodies "
        "(env INFERENCE_CLUB_LOG_LEVEL, default info)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the settings, then run the agent until Ctrl-C or SIGTERM."""
    try:
        config = load_config(args.config) if args.config else AgentConfig()
        backends = args.backend or _split(env("BACKENDS"))
        settings = build_settings(
            config,
            server=args.server,
            token=args.token,
            backend_urls=backends,
            rediscover_interval=_interval(args.rediscover_interval),
        )
    except ConfigError as exc:
        return fail(str(exc), code=2)
    level = (args.log_level or config.log_level or "info").lower()
    if level not in LOG_LEVELS:
        return fail(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}", code=2)
    configure_logging(level)
    _skip_unlogged_record_fields()
    shorten_gil_waits()
    keep_freed_memory()
    # Ctrl-C is the ordinary way to stop an agent; the runner has already cleaned up.
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        runner.run(_serve(settings))
    logger.info("stopped")
    return 0


def _skip_unlogged_record_fields() -> None:
    """Spare every log record the look-ups whose results the key=value lines never show.

    The agent logs one line per request, so these (a stack walk, the thread, the process id)
    would be paid a thousand times a second; the logging HOWTO lists these switches for that.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented way to skip the caller look-up


async def _serve(settings: AgentSettings) -> None:
    # The HTTP stack loads only here: other commands (and the gateway) never pay for it.
    from inference_club.agent.core import run_agent  # noqa: PLC0415

    agent = asyncio.create_task(run_agent(settings))
    _on_terminate(agent.cancel)
    try:
        await agent
    except asyncio.CancelledError:
        current = asyncio.current_task()
        # Only SIGTERM's cancel of the agent is a clean stop; our own cancel must propagate.
        if current is not None and current.cancelling():
            raise


def _on_terminate(stop: Callable[[], object]) -> None:
    """Call ``stop`` on SIGTERM, on POSIX through the loop and on Windows through ``signal``."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, lambda _signum, _frame: loop.call_soon_threadsafe(stop))


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _interval(seconds: float | None) -> float | None:
    if seconds is not None and seconds <= 0:
        msg = "--rediscover-interval must be a positive number of seconds"
        raise ConfigError(msg)
    return seconds
