"""``python -m bench``: run the benchmark suite and write ``results.md`` and ``results.json``."""

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bench.context import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL
from bench.plan import SCENARIOS
from bench.runner import Options, run

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark direct, gateway + agent, LiteLLM and a bare relay against one mock backend."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway path")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM path")
    parser.add_argument(
        "--litellm-venv",
        type=Path,
        help="reuse (or create and keep) this venv for LiteLLM instead of a throwaway one",
    )
    parser.add_argument(
        "--no-bare-relay",
        action="store_true",
        help="skip the bare relay (the reference for what two Python hops cost)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary data")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="the Redis the stores scenario counts rate limits in "
        f"(env BENCH_REDIS_URL, default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a PostgreSQL database the stores scenario may connect to, to make a scratch "
        f"database beside it for a gateway's data (env BENCH_POSTGRES_URL, default "
        f"{DEFAULT_POSTGRES_URL})",
    )
    args = parser.parse_args(argv)
    return Options(
        quick=args.quick,
        out_dir=args.out,
        scenarios=tuple(args.scenario or SCENARIOS),
        gateway=not args.no_gateway,
        litellm=not args.no_litellm,
        litellm_venv=args.litellm_venv,
        bare_relay=not args.no_bare_relay,
        keep_work=args.keep_work,
        redis_url=args.redis_url,
        postgres_url=args.postgres_url,
    )


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    options = parse(argv)
    try:
        return _run(run(options))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
