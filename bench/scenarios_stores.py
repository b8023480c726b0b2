"""What the shared stores cost: gateways counting rate limits in Redis, and keeping their
data in PostgreSQL, beside the default one (counters in memory, data in SQLite)."""

import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.context import Context, say
from bench.paths import Gateway, PathUnderTest, start_gateway
from bench.results import Measurement
from bench.scenarios_http import chat_step
from bench.services import ServiceError
from inference_club.gateway.redis_client import RedisClient, RedisError, parse_redis_url

REDIS_PATH = "gateway (Redis)"
POSTGRES_PATH = "gateway (PostgreSQL)"


@dataclass
class _Variant:
    """A second gateway and the server behind it that is metered with it."""

    gateway: Gateway
    server: str
    server_pid: int | None


async def stores(ctx: Context) -> list[Measurement]:
    """Non-streamed chat at fixed rates on direct, the default gateway, and each gateway whose
    store answered, taking turns at every rate."""
    if ctx.gateway is None:
        say("scenario stores: skipped, the gateway is not running")
        return []
    say("scenario stores: non-streamed chat, rate limits in Redis, data in PostgreSQL")
    variants: list[_Variant] = []
    # Named before it is made, so that an interruption at any point still drops it.
    scratch = f"inference_club_bench_{secrets.token_hex(4)}"
    try:
        redis = await _redis_variant(ctx)
        if redis is not None:
            variants.append(redis)
        postgres = await _postgres_variant(ctx, scratch)
        if postgres is not None:
            variants.append(postgres)
        for variant in variants:
            ctx.paths.append(variant.gateway.path)  # so settling between steps waits for it
        return await _steps(ctx, ctx.gateway.path, variants)
    finally:
        await _clean_up(ctx, variants, scratch)


async def _clean_up(ctx: Context, variants: list[_Variant], scratch: str) -> None:
    """Stop the second gateways and drop the scratch database, each whatever the others do."""
    for variant in variants:
        with contextlib.suppress(ValueError):
            ctx.paths.remove(variant.gateway.path)
        try:
            await variant.gateway.path.stop()
        except Exception as exc:
            ctx.notes.append(f"scenario stores: {variant.gateway.path.name} did not stop: {exc}")
    try:
        await drop_scratch_database(ctx.postgres_url, scratch)
    except (OSError, asyncpg.PostgresError) as exc:
        ctx.notes.append(f"scenario stores: database {scratch} was not dropped: {exc}")


async def _redis_variant(ctx: Context) -> _Variant | None:
    info = await redis_info(ctx.redis_url)
    if info is None:
        where = parse_redis_url(ctx.redis_url).where
        ctx.notes.append(f"scenario stores: no Redis answered at {where}, none measured")
        return None
    env = {"INFERENCE_CLUB_REDIS_URL": ctx.redis_url}
    gateway = await _second_gateway(ctx, REDIS_PATH, "redis", env)
    return None if gateway is None else _Variant(gateway, "redis", local_redis_pid(info))


async def _postgres_variant(ctx: Context, scratch: str) -> _Variant | None:
    if not await create_scratch_database(ctx.postgres_url, scratch, ctx.notes):
        return None
    try:
        pid = await postgres_server_pid(ctx.postgres_url)
    except (OSError, asyncpg.PostgresError):
        pid = None  # measured all the same, without the server's CPU
    url = _database_url(ctx.postgres_url, scratch, driver="postgresql+asyncpg")
    env = {"INFERENCE_CLUB_DATABASE_URL": url}
    gateway = await _second_gateway(ctx, POSTGRES_PATH, "postgres", env)
    return None if gateway is None else _Variant(gateway, "postgres", pid)


async def _second_gateway(
    ctx: Context, name: str, folder: str, env: dict[str, str]
) -> Gateway | None:
    assert ctx.gateway is not None  # checked by the scenario
    try:
        return await start_gateway(
            ctx.gateway.mock, ctx.work_dir / folder, ctx.log_dir / folder, name=name, env=env
        )
    except (ServiceError, OSError) as exc:
        ctx.notes.append(f"scenario stores: {name} failed to start: {exc}")
        return None


async def _steps(
    ctx: Context, default: PathUnderTest, variants: list[_Variant]
) -> list[Measurement]:
    # Each gateway with its own server metered beside it.
    paths: list[tuple[PathUnderTest, dict[str, int]]] = [(ctx.paths[0], {}), (default, {})]
    for variant in variants:
        servers = {variant.server: variant.server_pid} if variant.server_pid is not None else {}
        paths.append((variant.gateway.path, servers))
    results = []
    for rate in ctx.plan.stores_rates:
        for path, servers in paths:
            results.append(await chat_step(ctx, path, "stores", rate, servers))
    return results


async def redis_info(url: str) -> dict[str, str] | None:
    """The fields of ``INFO server`` of the Redis at ``url``; None when it does not answer."""
    client = RedisClient(url)
    try:
        [info] = await client.execute(["INFO", "server"])
    except RedisError:
        return None
    finally:
        await client.close()
    if not isinstance(info, bytes):
        return None
    return dict(line.partition(":")[::2] for line in info.decode().splitlines())


def local_redis_pid(info: dict[str, str]) -> int | None:
    """The process id of the Redis server that gave ``info`` when it runs on this machine (its
    CPU is metered then); None for one elsewhere (another host, a container)."""
    pid = info.get("process_id", "")
    return int(pid) if pid.isdigit() and _runs_here(int(pid), "redis") else None


async def postgres_server_pid(url: str) -> int | None:
    """The process id of the PostgreSQL server (its postmaster, whose children serve each
    connection) when it runs on this machine; None otherwise."""
    connection = await asyncpg.connect(_database_url(url, None, driver="postgresql"))
    try:
        # Read while the connection lasts: its backend process ends with it.
        parent = _parent_of(int(await connection.fetchval("SELECT pg_backend_pid()")))
    finally:
        await connection.close()
    return parent if parent is not None and _runs_here(parent, "postgres") else None


async def create_scratch_database(url: str, name: str, notes: list[str]) -> bool:
    """Make the empty database ``name`` beside the one ``url`` names, for one gateway's data;
    False (and a note) when PostgreSQL cannot make it."""
    try:
        connection = await asyncpg.connect(_database_url(url, None, driver="postgresql"))
    except (OSError, asyncpg.PostgresError) as exc:
        reason = type(exc).__name__
        notes.append(f"scenario stores: no PostgreSQL answered ({reason}), none measured")
        return False
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        notes.append(f"scenario stores: PostgreSQL made no database ({exc}), none measured")
        return False
    finally:
        await connection.close()
    return True


async def drop_scratch_database(url: str, name: str) -> None:
    """Drop the database ``name`` if it exists, whoever is still connected to it."""
    connection = await asyncpg.connect(_database_url(url, None, driver="postgresql"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _database_url(url: str, database: str | None, *, driver: str) -> str:
    """``url`` with ``driver`` as its scheme and, when given, another database."""
    parts = urlsplit(url)
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((driver, parts.netloc, path, parts.query, ""))


def _parent_of(pid: int) -> int | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return None


def _runs_here(pid: int, name: str) -> bool:
    """Whether this machine shows ``pid`` as a process of ``name`` (not one in a container)."""
    with contextlib.suppress(OSError):
        return name in Path(f"/proc/{pid}/comm").read_text()
    return False
