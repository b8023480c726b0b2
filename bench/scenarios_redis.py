"""Rate limits counted in Redis: a second gateway with a Redis URL beside the default one."""

import contextlib
from functools import partial
from pathlib import Path

from bench.context import Context, measure, say
from bench.loadgen import chat_request, open_loop
from bench.mock_backend import CHAT_MODEL
from bench.paths import PathUnderTest, start_gateway
from bench.results import Measurement
from bench.services import ServiceError
from inference_club.gateway.redis_client import RedisClient, RedisError

REDIS_PATH = "gateway (Redis)"


async def redis(ctx: Context) -> list[Measurement]:
    """Non-streamed chat at fixed rates: direct, the gateway counting in memory, and one
    counting in Redis (with the Redis server's CPU), taking turns at every rate."""
    if ctx.gateway is None:
        say("scenario redis: skipped, the gateway is not running")
        return []
    pid = await redis_server_pid(ctx.redis_url)
    if pid is None:
        ctx.notes.append(f"scenario redis skipped: no Redis answered at {ctx.redis_url}")
        say("scenario redis: skipped, Redis does not answer")
        return []
    say("scenario redis: non-streamed chat, rate limits counted in Redis")
    try:
        counting = await start_gateway(
            ctx.gateway.mock,
            ctx.work_dir / "redis",
            ctx.log_dir / "redis",
            name=REDIS_PATH,
            serve_env={"INFERENCE_CLUB_REDIS_URL": ctx.redis_url},
        )
    except (ServiceError, OSError) as exc:
        ctx.notes.append(f"scenario redis skipped: the gateway counting in Redis failed: {exc}")
        return []
    ctx.paths.append(counting.path)  # so that settling between steps waits for it too
    try:
        return await _steps(ctx, [ctx.paths[0], ctx.gateway.path, counting.path], pid)
    finally:
        ctx.paths.remove(counting.path)
        await counting.path.stop()


async def _steps(ctx: Context, paths: list[PathUnderTest], pid: int) -> list[Measurement]:
    results = []
    for rate in ctx.plan.redis_rates:
        for path in paths:
            endpoint = path.endpoint_or_fail()
            raw = chat_request(endpoint, CHAT_MODEL, stream=False)
            results.append(
                await measure(
                    ctx,
                    path,
                    "redis",
                    f"{rate} req/s",
                    rate,
                    partial(open_loop, endpoint, raw, rate, duration=ctx.plan.chat_seconds),
                    also_meter={"redis": pid},
                )
            )
    return results


async def redis_server_pid(url: str) -> int | None:
    """The process id of the Redis server at ``url`` when it answers and runs on this machine
    (its CPU is metered then); None otherwise."""
    client = RedisClient(url)
    try:
        [info] = await client.execute(["INFO", "server"])
    except RedisError:
        return None
    finally:
        await client.close()
    if not isinstance(info, bytes):
        return None
    fields = dict(line.partition(":")[::2] for line in info.decode().splitlines())
    pid = fields.get("process_id", "")
    return int(pid) if pid.isdigit() and _runs_redis_here(int(pid)) else None


def _runs_redis_here(pid: int) -> bool:
    """Whether ``pid`` is a Redis server this machine shows (not one in another container)."""
    with contextlib.suppress(OSError):
        return "redis" in Path(f"/proc/{pid}/comm").read_text()
    return False
