"""Shared CLI plumbing: every flag also reads an ``INFERENCE_CLUB_*`` environment variable."""

import argparse
import os
import sys
from pathlib import Path

ENV_PREFIX = "INFERENCE_CLUB_"


def env(name: str, default: str | None = None) -> str | None:
    """The value of ``INFERENCE_CLUB_<name>``, or ``default``."""
    return os.environ.get(ENV_PREFIX + name, default)


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """``--data`` and ``--database-url``: where the store lives (shared by serve and admin)."""
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(env("DATA", "./data") or "./data"),
        help="data directory holding the SQLite file and assets "
        "(env INFERENCE_CLUB_DATA, default ./data)",
    )
    parser.add_argument(
        "--database-url",
        default=env("DATABASE_URL"),
        help="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db "
        "(env INFERENCE_CLUB_DATABASE_URL, default SQLite in the data directory)",
    )


def fail(message: str, code: int = 1) -> int:
    """Print an error for a human on stderr and return the exit code."""
    print(f"inference-club: error: {message}", file=sys.stderr)
    return code
