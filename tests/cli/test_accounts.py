"""``users set-password`` and ``invites create``, run as real processes on a temporary database."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from inference_club.store import Store, default_database_url

CLI = [sys.executable, "-m", "inference_club.cli.main"]
INVITE_URL = re.compile(r"https://club\.example\.org/join/(ici_[A-Za-z0-9_-]{43})")


def _run(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFERENCE_CLUB_")}
    return subprocess.run(  # noqa: S603 - our own CLI with test arguments
        [*CLI, *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_set_password_reads_stdin_and_keeps_it_out_of_argv(tmp_path: Path) -> None:
    """The password comes from stdin's first line; the right one then opens the account."""
    assert _run(tmp_path, "users", "add", "alice").returncode == 0

    result = _run(tmp_path, "users", "set-password", "alice", stdin="piped secret 1\nignored\n")

    assert result.returncode == 0, result.stderr
    assert "piped secret 1" not in result.stdout + result.stderr

    async def check() -> tuple[bool, bool]:
        async with await Store.open(default_database_url(tmp_path)) as store:
            right = await store.check_user_password("alice", "piped secret 1")
            wrong = await store.check_user_password("alice", "ignored")
            return right is not None, wrong is not None

    assert asyncio.run(check()) == (True, False)


def test_set_password_refuses_unknown_members_and_short_passwords(tmp_path: Path) -> None:
    """A missing member or a password under 8 characters fails with a message and exit 1."""
    assert _run(tmp_path, "users", "add", "alice").returncode == 0

    missing = _run(tmp_path, "users", "set-password", "nobody", stdin="long enough\n")
    short = _run(tmp_path, "users", "set-password", "alice", stdin="short\n")

    assert (missing.returncode, short.returncode) == (1, 1)
    assert "no user named 'nobody'" in missing.stderr
    assert "at least 8 characters" in short.stderr
    assert "short" not in short.stdout


def test_invite_create_prints_only_the_link(tmp_path: Path) -> None:
    """stdout holds the invite URL alone; the link makes an admin when --admin was given."""
    result = _run(
        tmp_path, "invites", "create", "--admin", "--public-url", "https://club.example.org/"
    )

    assert result.returncode == 0, result.stderr
    match = INVITE_URL.fullmatch(result.stdout.strip())
    assert match is not None, result.stdout
    assert "single use" in result.stderr

    async def join() -> bool:
        async with await Store.open(default_database_url(tmp_path)) as store:
            user = await store.accept_invite(match.group(1), "newadmin", "a fine password")
            return user.is_admin

    assert asyncio.run(join()) is True
