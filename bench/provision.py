"""Bulk set-up in the gateway's store: lift the bench user's limits, register many providers.

Run as ``python -m bench.provision``; the CLI would need one process per provider, which for
thousands of simulated agents takes longer than the benchmark itself. Tokens go to a file
readable only by its owner, never to the output.
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path

# Large enough that no scenario meets the limit, small enough for any integer column.
_UNLIMITED = 2**31 - 1


async def provision(database_url: str, user: str, providers: int, prefix: str, out: Path) -> int:
    """Lift ``user``'s limits and add providers ``<prefix>-00000``...; returns tokens written."""
    from inference_club.store import Store  # noqa: PLC0415

    store = await Store.open(database_url)
    async with store:
        await store.set_user_limits(
            user,
            requests_per_minute=_UNLIMITED,
            daily_tokens=_UNLIMITED,
            daily_audio_seconds=float(_UNLIMITED),
            daily_images=_UNLIMITED,
        )
        existing = _read_tokens(out)
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a") as file:
            for index in range(len(existing), providers):
                _, token = await store.add_provider(user, f"{prefix}-{index:05d}")
                file.write(token + "\n")
    return max(providers, len(existing))


def _read_tokens(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def read_tokens(path: Path, count: int) -> list[str]:
    """The first ``count`` tokens of a file written by :func:`provision`."""
    return _read_tokens(path)[:count]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: prints only how many tokens the file now holds."""
    parser = argparse.ArgumentParser(prog="python -m bench.provision", description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("INFERENCE_CLUB_DATABASE_URL") or None,
        help="the gateway's database, as `inference-club serve` takes it "
        "(env INFERENCE_CLUB_DATABASE_URL, default: SQLite in --data)",
    )
    parser.add_argument("--user", required=True)
    parser.add_argument("--providers", type=int, default=0)
    parser.add_argument("--prefix", default="sim")
    parser.add_argument("--tokens-out", type=Path, required=True)
    args = parser.parse_args(argv)
    from inference_club.store import default_database_url  # noqa: PLC0415

    database_url = args.database_url or default_database_url(args.data)
    written = asyncio.run(
        provision(database_url, args.user, args.providers, args.prefix, args.tokens_out)
    )
    print(f"tokens {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
