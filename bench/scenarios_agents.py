"""Scenarios about many agents on one gateway: idle memory per agent and routing cost."""

import asyncio
import contextlib
import os
import statistics
from functools import partial
from pathlib import Path

import orjson

from bench.context import Context, measure, say
from bench.httpwire import build_request
from bench.loadgen import chat_request, open_loop
from bench.mock_backend import CHAT_MODEL
from bench.paths import Gateway
from bench.procstat import Meter, rss_bytes
from bench.results import MB, Measurement
from bench.services import BENCH_ENV, PYTHON, ServiceError, fetch

_READY_TIMEOUT = 600.0
_MODELS_LIST_RATE = 20.0


class SimulatedAgents:
    """A ``bench.tunnel_sim`` process holding agents open until :meth:`close`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid
        self.connected = 0
        self.failed = 0
        self.seconds = 0.0
        self.errors: list[str] = []

    @classmethod
    async def launch(
        cls, gateway: Gateway, tokens: Path, count: int, per_agent: int, log: Path
    ) -> "SimulatedAgents":
        """Start ``count`` agents with ``per_agent`` models each and wait until all are in."""
        argv = [PYTHON, "-m", "bench.tunnel_sim", "--url", gateway.tunnel_url]
        argv += ["--tokens", str(tokens), "--count", str(count)]
        argv += ["--models-per-agent", str(per_agent)]
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, **BENCH_ENV},
                start_new_session=True,
            )
        agents = cls(process)
        try:
            await asyncio.wait_for(agents._read_until_ready(), _READY_TIMEOUT)
        except BaseException:
            await agents.close()
            raise
        return agents

    async def _read_until_ready(self) -> None:
        assert self._process.stdout is not None
        while line := (await self._process.stdout.readline()).decode().strip():
            kind, _, rest = line.partition(" ")
            if kind == "error":
                self.errors.append(rest)
            elif kind == "ready":
                fields = dict(item.split("=", 1) for item in rest.split())
                self.connected = int(fields["connected"])
                self.failed = int(fields["failed"])
                self.seconds = float(fields["seconds"])
                return
        msg = f"the simulated agents exited early: {'; '.join(self.errors) or 'no output'}"
        raise ServiceError(msg)

    async def close(self) -> None:
        """Close every agent: end of standard input, then a kill if it lingers."""
        if self._process.returncode is not None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()


async def _settled_rss(pid: int) -> int:
    samples = []
    for _ in range(5):
        samples.append(rss_bytes(pid))
        await asyncio.sleep(0.1)
    return int(statistics.median(samples))


async def idle(ctx: Context) -> list[Measurement]:
    """M idle agents connected to a fresh gateway: memory per agent and heartbeat CPU."""
    gateway = ctx.gateway
    if gateway is None or gateway.path.endpoint is None:
        say("scenario idle: skipped, the gateway is not running")
        return []
    say("scenario idle: simulated agents connected and idle")
    tokens = await gateway.register_providers(max(ctx.plan.idle_counts))
    results = []
    for count in ctx.plan.idle_counts:
        await gateway.restart()
        pid = gateway.path.pids()["gateway"]
        before = await _settled_rss(pid)
        agents = await SimulatedAgents.launch(
            gateway, tokens, count, 1, ctx.log_dir / "tunnel-sim.log"
        )
        try:
            # Long enough for every agent to see heartbeats both ways.
            async with Meter({**gateway.path.pids(), "agents": agents.pid}) as meter:
                await asyncio.sleep(6.0)
            after = await _settled_rss(pid)
        finally:
            await agents.close()
        connected = max(agents.connected, 1)
        per_agent_kb = (after - before) / connected / 1024
        error = "; ".join(agents.errors[:2]) if agents.failed else None
        say(
            f"  idle {count} agents: {agents.connected} connected in {agents.seconds:.1f} s, "
            f"{per_agent_kb:.1f} KB each"
        )
        results.append(
            Measurement(
                "idle",
                f"{count} agents",
                count,
                "gateway",
                usage=dict(meter.usage),
                extra={
                    "connected": agents.connected,
                    "failed": agents.failed,
                    "connect_seconds": agents.seconds,
                    "rss_before_mb": before / MB,
                    "rss_after_mb": after / MB,
                    "per_agent_kb": per_agent_kb,
                    "other_cpu_percent": meter.other_cpu_percent,
                },
                error=error,
            )
        )
    await _fresh_gateway_behind(gateway)
    return results


async def routing(ctx: Context) -> list[Measurement]:
    """Chat latency to one model while the gateway also knows N models, or N providers."""
    gateway = ctx.gateway
    if gateway is None or gateway.path.endpoint is None:
        say("scenario routing: skipped, the gateway is not running")
        return []
    say("scenario routing: chat latency with many models and many providers registered")
    plan = ctx.plan
    tokens = await gateway.register_providers(max(plan.routing_sizes))
    results = []
    for size in plan.routing_sizes:
        for scenario, agents_count, per_agent in (
            ("routing-models", 1, size),
            ("routing-providers", size, 1),
        ):
            agents = await SimulatedAgents.launch(
                gateway, tokens, agents_count, per_agent, ctx.log_dir / "tunnel-sim.log"
            )
            try:
                results.append(await _route_once(ctx, gateway, scenario, size, agents.pid))
            finally:
                await agents.close()
            await ctx.settle()
    await _fresh_gateway_behind(gateway)
    return results


async def _fresh_gateway_behind(gateway: Gateway) -> None:
    """Restart the gateway after thousands of agents came and went.

    CPython keeps the memory arenas those connections used (mostly free, but not returned to
    the system), so without this the next scenarios' memory figures would carry them.
    """
    say("  restarting the gateway so the next scenarios start from a fresh heap")
    await gateway.restart()


async def _route_once(
    ctx: Context, gateway: Gateway, scenario: str, size: int, agents_pid: int
) -> Measurement:
    endpoint = gateway.path.endpoint
    assert endpoint is not None
    status, body = await fetch(endpoint, "/v1/models", timeout=30)
    listed = len(orjson.loads(body).get("data", [])) if status == 200 else -1
    models_list = await open_loop(
        endpoint,
        build_request(endpoint, "GET", "/v1/models"),
        _MODELS_LIST_RATE,
        duration=ctx.plan.routing_seconds,
        timeout=30,
    )
    list_p50 = statistics.median(r.end - r.scheduled for r in models_list.records) * 1000
    raw = chat_request(endpoint, CHAT_MODEL, stream=False)
    label = f"{size} {'models' if scenario == 'routing-models' else 'providers'}"
    return await measure(
        ctx,
        gateway.path,
        scenario,
        label,
        size,
        partial(open_loop, endpoint, raw, ctx.plan.routing_rate, duration=ctx.plan.routing_seconds),
        extra=lambda _: {"models_listed": float(listed), "models_list_p50_ms": list_p50},
        also_meter={"agents": agents_pid},
    )
