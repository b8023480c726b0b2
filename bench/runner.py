"""One benchmark run: start the mock and the paths, run the chosen scenarios, write the report."""

import os
import platform
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    scenarios_agents,
    scenarios_cost,
    scenarios_http,
    scenarios_media,
    scenarios_stores,
)
from bench.context import Context, say
from bench.mock_backend import MockSettings, StreamProfile
from bench.paths import (
    BARE_RELAY,
    LITELLM_REQUIREMENT,
    PathUnderTest,
    start_bare_relay,
    start_gateway,
    start_litellm,
    start_mock,
)
from bench.plan import FULL, QUICK, SCENARIOS
from bench.report import RunInfo, write
from bench.results import Measurement
from bench.services import ServiceError, raise_open_file_limit
from bench.targets import evaluate

# Other processes using more than this share of one core make a step's numbers unreliable.
_NOISY_CPU = 25.0

Scenario = Callable[[Context], Awaitable[list[Measurement]]]

SCENARIO_RUNNERS: dict[str, Scenario] = {
    "upload": scenarios_http.upload,
    "idle": scenarios_agents.idle,
    "routing": scenarios_agents.routing,
    "hold": scenarios_http.hold,
    "chat": scenarios_http.chat,
    "streams": scenarios_http.streams,
    "max-rate": scenarios_http.max_rate,
    "stores": scenarios_stores.stores,
    "media": scenarios_media.media,
    "cost": scenarios_cost.cost,
}
assert tuple(SCENARIO_RUNNERS) == SCENARIOS


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for."""

    quick: bool
    out_dir: Path
    scenarios: tuple[str, ...]
    gateway: bool
    litellm: bool
    litellm_venv: Path | None
    bare_relay: bool
    keep_work: bool
    redis_url: str
    postgres_url: str


async def run(options: Options) -> int:
    """Run the benchmark; the exit code is 0 when the report was written."""
    plan = QUICK if options.quick else FULL
    raise_open_file_limit()
    work = Path(tempfile.mkdtemp(prefix="inference-club-bench-"))
    log_dir = options.out_dir / "logs"
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mock_settings = MockSettings(
        default=StreamProfile(plan.stream_chunks, plan.stream_interval),
        slow=StreamProfile(plan.hold_chunks, plan.hold_interval),
        speech_bytes=plan.speech_bytes,
        image_bytes=plan.image_bytes,
    )
    say(f"{'quick' if plan.quick else 'full'} run; logs in {log_dir}")
    mock, mock_endpoint = await start_mock(mock_settings, log_dir)
    ctx = Context(plan, mock, [PathUnderTest("direct", mock_endpoint)], None, work, log_dir)
    ctx.redis_url = options.redis_url
    ctx.postgres_url = options.postgres_url
    states = {"direct": "ready"}
    measurements: list[Measurement] = []
    try:
        if options.gateway:
            states["gateway"] = await _start_gateway(ctx, _simulated_agents(options))
        if options.litellm:
            states["litellm"] = await _start_litellm(ctx, options.litellm_venv or work / "venv")
        if options.bare_relay:
            states[BARE_RELAY] = await _start_bare_relay(ctx)
        for name in SCENARIOS:
            if name in options.scenarios:
                measurements += await _run_scenario(ctx, name)
    finally:
        for path in reversed(ctx.paths):
            await path.stop()
        await mock.stop()
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    noisy = [m for m in measurements if m.extra.get("other_cpu_percent", 0.0) > _NOISY_CPU]
    if noisy:
        ctx.notes.append(
            f"{len(noisy)} of {len(measurements)} steps ran while other processes used more than "
            f"{_NOISY_CPU:g} % of a core (column 'other CPU'); rerun on a quiet machine."
        )
    try:
        checks = evaluate(measurements)
    except Exception as exc:
        # The measurements took minutes; a fault in judging them must not lose them.
        checks = []
        ctx.notes.append(f"target checks failed: {type(exc).__name__}: {exc}")
    info = RunInfo(
        started=started,
        mode="quick" if plan.quick else "full",
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        paths=states,
        notes=tuple(dict.fromkeys(ctx.notes)),
    )
    md_path, json_path = write(options.out_dir, info, measurements, checks)
    say(f"wrote {md_path} and {json_path}")
    for check in checks:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check.passed]
        say(f"  {verdict:>12}  {check.target}: {check.measured}")
    return 0


def _simulated_agents(options: Options) -> int:
    """How many provider tokens the agent scenarios will need."""
    plan = QUICK if options.quick else FULL
    needed = [0]
    if "idle" in options.scenarios:
        needed.append(max(plan.idle_counts))
    if "routing" in options.scenarios:
        needed.append(max(plan.routing_sizes))
    return max(needed)


async def _start_gateway(ctx: Context, extra_providers: int) -> str:
    say(f"starting gateway + agent ({extra_providers} extra provider tokens first)")
    try:
        gateway = await start_gateway(
            ctx.paths[0].endpoint_or_fail(), ctx.work_dir, ctx.log_dir, extra_providers
        )
    except (ServiceError, OSError) as exc:
        say(f"gateway + agent unavailable, skipped in every scenario: {exc}")
        return f"unavailable: {exc}"
    ctx.gateway = gateway
    ctx.paths.append(gateway.path)
    return "ready"


async def _start_bare_relay(ctx: Context) -> str:
    say("starting the bare relay (the least a two-process Python relay does, for reference)")
    try:
        path = await start_bare_relay(ctx.paths[0].endpoint_or_fail(), ctx.log_dir)
    except (ServiceError, OSError) as exc:
        say(f"bare relay unavailable, skipped in every scenario: {exc}")
        return f"unavailable: {exc}"
    ctx.paths.append(path)
    return "ready"


async def _start_litellm(ctx: Context, venv: Path) -> str:
    say(f"starting LiteLLM proxy ({LITELLM_REQUIREMENT}, installed into {venv} if missing)")
    try:
        path = await start_litellm(ctx.paths[0].endpoint_or_fail(), venv, ctx.work_dir, ctx.log_dir)
    except (ServiceError, OSError) as exc:
        say(f"LiteLLM unavailable, skipped in every scenario: {exc}")
        return f"unavailable: {exc}"
    ctx.paths.append(path)
    return f"ready ({LITELLM_REQUIREMENT})"


async def _run_scenario(ctx: Context, name: str) -> list[Measurement]:
    try:
        return await SCENARIO_RUNNERS[name](ctx)
    except Exception as exc:
        # One broken scenario must not cost the numbers of the others.
        note = f"scenario {name} stopped: {type(exc).__name__}: {exc}"
        say(note)
        ctx.notes.append(note)
        return []
