"""What a request costs each process in instructions: the gateway and agent beside the bare
relay, each started afresh under callgrind (``bench.callgrind``)."""

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from bench import callgrind
from bench.context import Context, say
from bench.loadgen import RunResult, chat_request, open_loop, summarize
from bench.mock_backend import CHAT_MODEL
from bench.paths import BARE_RELAY, PathUnderTest, start_bare_relay, start_gateway
from bench.results import Measurement
from bench.services import ServiceError

# Python starts several times slower under valgrind, even with counting off.
_READY_WITHIN = 180.0
STEP = "non-streamed chat"
# Per-request figures in each measurement's ``extra``: f"{process}{INSTRUCTIONS}".
INSTRUCTIONS = "_instructions_per_request"


async def cost(ctx: Context) -> list[Measurement]:
    """Instructions per non-streamed chat request in each process of the gateway path and of
    the bare relay, counted over the same requests sent at a low rate."""
    missing = callgrind.missing_tools()
    if missing:
        note = f"scenario cost: skipped, {', '.join(missing)} not installed (valgrind)"
        ctx.notes.append(note)
        say(note)
        return []
    say("scenario cost: instructions per request, counted by callgrind")
    starts: list[tuple[str, Callable[[Path], Awaitable[PathUnderTest]]]] = []
    if ctx.gateway is not None:
        starts.append(("gateway", partial(_start_gateway, ctx)))
    if any(path.name == BARE_RELAY for path in ctx.paths):
        starts.append((BARE_RELAY, partial(_start_bare_relay, ctx)))
    results = []
    for name, start in starts:
        out_dir = ctx.work_dir / "callgrind" / name
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            path = await start(out_dir)
        except ServiceError as exc:
            ctx.notes.append(f"scenario cost: {name} did not start under callgrind: {exc}")
            continue
        try:
            results.append(await _measure(ctx, path, out_dir))
        finally:
            await path.stop()
    return results


async def _start_gateway(ctx: Context, out_dir: Path) -> PathUnderTest:
    gateway = await start_gateway(
        ctx.paths[0].endpoint_or_fail(),
        ctx.work_dir / "cost-gateway",
        ctx.log_dir / "cost",
        launcher=callgrind.launcher(out_dir),
        ready_within=_READY_WITHIN,
    )
    return gateway.path


async def _start_bare_relay(ctx: Context, out_dir: Path) -> PathUnderTest:
    return await start_bare_relay(
        ctx.paths[0].endpoint_or_fail(),
        ctx.log_dir / "cost",
        launcher=callgrind.launcher(out_dir),
        ready_within=_READY_WITHIN,
    )


async def _measure(ctx: Context, path: PathUnderTest, out_dir: Path) -> Measurement:
    """Warm the path up uncounted, then count the same number of requests on it."""
    plan = ctx.plan
    endpoint = path.endpoint_or_fail()
    raw = chat_request(endpoint, CHAT_MODEL, stream=False)

    def requests(count: int) -> Awaitable[RunResult]:
        return open_loop(endpoint, raw, plan.cost_rate, count=count, timeout=30.0)

    await requests(plan.cost_warm_up)
    try:
        run, counts = await callgrind.count_instructions(
            path.pids(), out_dir, partial(requests, plan.cost_requests)
        )
    except callgrind.CallgrindError as exc:
        return Measurement("cost", STEP, plan.cost_requests, path.name, error=str(exc))
    summary = summarize(run)
    served = max(summary.ok, 1)
    extra = {f"{name}{INSTRUCTIONS}": count / served for name, count in counts.items()}
    extra[f"total{INSTRUCTIONS}"] = sum(counts.values()) / served
    error = None if summary.errors == 0 else f"{summary.errors} requests failed"
    say(f"  cost {path.name}: {extra[f'total{INSTRUCTIONS}']:,.0f} instructions per request")
    return Measurement(
        "cost", STEP, plan.cost_requests, path.name, summary, extra=extra, error=error
    )
