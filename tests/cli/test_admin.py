"""The admin commands, run as the real console script against a temporary data directory."""

import asyncio
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from inference_club.cli.main import build_parser
from inference_club.store import Store, default_database_url

SCRIPT = Path(sys.executable).with_name("inference-club")
API_KEY = re.compile(r"ic_[A-Za-z0-9_-]{43}")
PROVIDER_TOKEN = re.compile(r"icp_[A-Za-z0-9_-]{43}")
POSTGRES_MAINTENANCE = "postgresql://root@127.0.0.1:5432/test"


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any INFERENCE_CLUB_* setting leaking in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFERENCE_CLUB_")}
    env.update(extra)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script with test arguments
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env or _clean_env(),
        timeout=60,
        check=False,
    )


class Cli:
    """Runs ``inference-club`` commands on one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(*args, "--data", str(self.data_dir))

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its stdout."""
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def fails(self, *args: str) -> str:
        """Run a command that must fail with exit code 1 and nothing on stdout; its error."""
        result = self(*args)
        assert (result.returncode, result.stdout) == (1, ""), result
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("inference-club: error: ")
        return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The console script, pointed at a fresh data directory."""
    return Cli(tmp_path / "data")


async def _open(data_dir: Path) -> Store:
    return await Store.open(default_database_url(data_dir))


def _add_users(data_dir: Path, *names: str) -> None:
    """Set up users in-process: quicker than a command each, and not what is under test."""

    async def add() -> None:
        store = await _open(data_dir)
        try:
            for name in names:
                await store.add_user(name)
        finally:
            await store.close()

    asyncio.run(add())


def _table(stdout: str) -> list[dict[str, str]]:
    """Parse an aligned table, checking each column starts where its header does."""
    header, *rows = stdout.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    names = header.split()
    parsed = []
    for row in rows:
        cells = list(re.finditer(r"\S+", row))
        assert [cell.start() for cell in cells] == starts, (header, row)
        parsed.append({name: cell.group() for name, cell in zip(names, cells, strict=True)})
    return parsed


def test_created_key_is_alone_on_stdout_and_authenticates(cli: Cli) -> None:
    """`keys create` prints one line, the key, which the store then accepts for that user."""
    cli.ok("users", "add", "alice")

    result = cli("keys", "create", "alice", "--name", "laptop")

    assert result.returncode == 0, result.stderr
    assert API_KEY.fullmatch(result.stdout.rstrip("\n"))
    assert result.stdout.count("\n") == 1
    key = result.stdout.strip()
    assert key not in result.stderr

    async def check() -> None:
        store = await _open(cli.data_dir)
        try:
            identity = await store.authenticate_api_key(key)
            assert identity is not None
            assert identity.user_name == "alice"
        finally:
            await store.close()

    asyncio.run(check())


def test_keys_list_and_revoke_by_prefix(cli: Cli) -> None:
    """`keys list` shows prefix and name; `keys revoke PREFIX` marks it and stops the key."""
    _add_users(cli.data_dir, "alice")
    revoked_key = cli.ok("keys", "create", "alice").strip()
    kept_key = cli.ok("keys", "create", "alice", "--name", "spare").strip()

    before = _table(cli.ok("keys", "list", "alice"))
    revoke_out = cli.ok("keys", "revoke", revoked_key[:12])
    after = {row["PREFIX"]: row for row in _table(cli.ok("keys", "list", "alice"))}

    assert [(row["PREFIX"], row["NAME"], row["REVOKED"]) for row in before] == [
        (revoked_key[:12], "default", "-"),
        (kept_key[:12], "spare", "-"),
    ]
    assert revoked_key[:12] in revoke_out
    assert revoked_key not in revoke_out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", after[revoked_key[:12]]["REVOKED"])
    assert after[kept_key[:12]]["REVOKED"] == "-"

    async def check() -> None:
        store = await _open(cli.data_dir)
        try:
            assert await store.authenticate_api_key(revoked_key) is None
            assert await store.authenticate_api_key(kept_key) is not None
        finally:
            await store.close()

    asyncio.run(check())


def test_errors_are_one_clear_line_and_exit_1(cli: Cli) -> None:
    """Unknown users, taken names, bad names and unknown prefixes fail with one stderr line."""
    _add_users(cli.data_dir, "alice")

    assert "'alice' already exists" in cli.fails("users", "add", "alice")
    assert "no user named 'ghost'" in cli.fails("keys", "create", "ghost")
    assert "invalid user name" in cli.fails("users", "add", "bad name")
    assert "ic_nothere" in cli.fails("keys", "revoke", "ic_nothere")
    assert "no user named 'ghost'" in cli.fails("providers", "add", "ghost", "box")


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    """A database that cannot be reached fails with exit 1 and never echoes the URL's password."""
    result = _run(
        "users",
        "list",
        "--database-url",
        "postgresql+asyncpg://root:hunter2secret@127.0.0.1:1/none",
    )

    assert result.returncode == 1
    assert "database error" in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout


def test_users_list_and_limits(cli: Cli) -> None:
    """`users list` shows members by name; `set-limit` sets and clears limits."""
    _add_users(cli.data_dir, "bob")
    cli.ok("users", "add", "alice", "--admin")

    cli.ok("users", "set-limit", "bob", "--rpm", "30", "--daily-tokens", "250000")
    cli.ok("users", "set-limit", "bob", "--rpm", "default", "--daily-images", "4")
    rows = _table(cli.ok("users", "list"))

    assert [(row["NAME"], row["ADMIN"]) for row in rows] == [("alice", "yes"), ("bob", "no")]
    assert (rows[1]["RPM"], rows[1]["DAILY_TOKENS"], rows[1]["DAILY_IMAGES"]) == (
        "default",
        "250000",
        "4",
    )
    assert rows[0]["RPM"] == "default"


def test_set_limit_refuses_bad_input_before_touching_the_database(cli: Cli) -> None:
    """No limit, a negative one or a non-number is a usage error (exit 2); nothing is created."""
    for args in (["--rpm", "-5"], ["--rpm", "lots"], []):
        result = cli("users", "set-limit", "alice", *args)
        assert result.returncode == 2, result
        assert result.stdout == ""
    assert not cli.data_dir.exists()


def test_provider_token_is_alone_on_stdout_and_authenticates(cli: Cli) -> None:
    """`providers add` prints only the token; it authenticates; `providers list` shows it."""
    _add_users(cli.data_dir, "brian")

    token = cli.ok("providers", "add", "brian", "brian-home")
    rows = _table(cli.ok("providers", "list"))

    assert PROVIDER_TOKEN.fullmatch(token.rstrip("\n"))
    assert token.count("\n") == 1
    assert [(row["NAME"], row["OWNER"], row["TOKEN"]) for row in rows] == [
        ("brian-home", "brian", token[:12])
    ]
    assert "'brian-home' already exists" in cli.fails("providers", "add", "brian", "brian-home")

    async def check() -> None:
        store = await _open(cli.data_dir)
        try:
            provider = await store.authenticate_provider(token.strip())
            assert provider is not None
            assert provider.name == "brian-home"
        finally:
            await store.close()

    asyncio.run(check())


def test_groups_membership(cli: Cli) -> None:
    """Groups are created, gain and lose members, and list them."""
    _add_users(cli.data_dir, "alice", "bob")
    cli.ok("groups", "add", "friends")

    cli.ok("groups", "add-member", "friends", "bob")
    cli.ok("groups", "add-member", "friends", "alice")
    cli.ok("groups", "remove-member", "friends", "bob")
    rows = _table(cli.ok("groups", "list"))

    assert [(row["GROUP"], row["MEMBERS"]) for row in rows] == [("friends", "alice")]
    assert "not in group" in cli.fails("groups", "remove-member", "friends", "bob")
    assert "no group named 'nope'" in cli.fails("groups", "add-member", "nope", "alice")


def test_data_directory_comes_from_the_environment(tmp_path: Path) -> None:
    """Without --data, INFERENCE_CLUB_DATA chooses the database."""
    env = _clean_env(INFERENCE_CLUB_DATA=str(tmp_path / "from-env"))

    added = _run("users", "add", "alice", env=env)
    listed = _run("users", "list", env=env)

    assert added.returncode == 0, added.stderr
    assert (tmp_path / "from-env" / "inference-club.db").is_file()
    assert "alice" in listed.stdout


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, dropped afterwards."""
    name = f"ic_test_cli_{secrets.token_hex(4)}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_MAINTENANCE)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://root@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_database_url_reaches_postgresql(postgres_url: str) -> None:
    """--database-url points every command at PostgreSQL instead of the data directory."""
    added = _run("users", "add", "alice", "--database-url", postgres_url)
    key = _run("keys", "create", "alice", "--database-url", postgres_url)
    listed = _run("keys", "list", "alice", "--database-url", postgres_url)

    assert added.returncode == 0, added.stderr
    assert API_KEY.fullmatch(key.stdout.strip())
    assert key.stdout.strip()[:12] in listed.stdout


ADMIN_COMMANDS = [
    *(["users", *name] for name in ([], ["add"], ["list"], ["set-limit"])),
    *(["keys", *name] for name in ([], ["create"], ["list"], ["revoke"])),
    *(["providers", *name] for name in ([], ["add"], ["create"], ["list"])),
    *(["groups", *name] for name in ([], ["add"], ["add-member"], ["remove-member"], ["list"])),
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works on every admin command and describes it beyond the usage line."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])

    assert exited.value.code == 0
    text = capsys.readouterr().out
    # An alias prints the usage of the command it stands for.
    canonical = ["providers", "add"] if command == ["providers", "create"] else command
    assert text.startswith("usage: inference-club " + " ".join(canonical))
    assert len(text.splitlines()) > 5


def test_admin_module_does_not_import_the_database_stack() -> None:
    """Importing the CLI's admin commands pulls in no SQLAlchemy, so the agent stays light."""
    probe = (
        "import sys, inference_club.cli.admin; "
        "heavy = {'sqlalchemy', 'alembic', 'aiosqlite', 'asyncpg'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
        "or m.startswith('inference_club.store')))"
    )
    result = subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
