"""Entry point of the ``inference-club`` console script: builds the parser and dispatches."""

import argparse
import sys
from collections.abc import Sequence

from inference_club import __version__
from inference_club.cli import accounts, admin, agent_command, demo, serve


def build_parser() -> argparse.ArgumentParser:
    """The full command tree; every command answers ``--help``."""
    parser = argparse.ArgumentParser(
        prog="inference-club",
        description="Share the GPUs in your members' homes through one OpenAI-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"inference-club {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(commands)
    agent_command.register(commands)
    admin.register(commands)
    accounts.register(commands)
    demo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the return value is the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
