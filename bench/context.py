"""What every scenario works with: the plan, the paths, and measuring one load run on a path."""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import RunResult, summarize
from bench.paths import Gateway, PathUnderTest
from bench.plan import Plan
from bench.procstat import Meter, cpu_seconds, descendants
from bench.results import Measurement
from bench.services import Service

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/postgres"
# A process tree is idle below this share of one core.
_IDLE_CPU = 0.05
_SETTLE_TIMEOUT = 30.0


def say(message: str) -> None:
    """One progress line."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Context:
    """The run's plan and the paths that started."""

    plan: Plan
    mock: Service
    paths: list[PathUnderTest]
    gateway: Gateway | None
    work_dir: Path
    log_dir: Path
    notes: list[str] = field(default_factory=list)
    # The Redis server a gateway of the ``stores`` scenario counts rate limits in, and the
    # PostgreSQL database next to which another keeps its data (in a database of its own).
    redis_url: str = DEFAULT_REDIS_URL
    postgres_url: str = DEFAULT_POSTGRES_URL

    def ready_paths(self, *, reference: bool = True) -> list[PathUnderTest]:
        """The paths that can take load now, in report order; without the yardsticks when
        ``reference`` is false."""
        return [
            path
            for path in self.paths
            if path.endpoint is not None and (reference or not path.reference)
        ]

    def pids(self, path: PathUnderTest) -> dict[str, int]:
        """The processes to meter for ``path``: its own and the mock's."""
        return {**path.pids(), "mock": self.mock.pid}

    async def settle(self, after: str = "a step", servers: Sequence[int] = ()) -> None:
        """Wait until every process under test, and ``servers`` metered with the step, is
        idle, so one step does not bleed into the next.

        A proxy that fell behind keeps working on requests the client gave up on.
        """
        if await self._idle_within(_SETTLE_TIMEOUT, servers):
            return
        busy = [path for path in self.paths if path.restart is not None and await _busy(path)]
        for path in busy:
            assert path.restart is not None
            # Its backlog would take minutes and run into the next step (the next rate's
            # direct step): a fresh process starts that step on a quiet machine.
            await path.restart()
            self.notes.append(
                f"{path.name} was still busy 30 s after {after}; it was restarted before "
                "the next step"
            )
        if busy and await self._idle_within(_SETTLE_TIMEOUT, servers):
            return
        self.notes.append(
            f"processes under test were still busy 30 s after {after}; the next step shared the CPU"
        )

    async def _idle_within(self, timeout: float, servers: Sequence[int] = ()) -> bool:
        pids = [self.mock.pid, *servers]
        pids += [pid for path in self.paths for pid in path.pids().values()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = _tree_cpu(pids)
            await asyncio.sleep(0.25)
            if _tree_cpu(pids) - before < _IDLE_CPU * 0.25:
                return True
        return False


async def _busy(path: PathUnderTest) -> bool:
    """Whether ``path``'s processes use CPU right now (sampled over a quarter second)."""
    pids = list(path.pids().values())
    before = _tree_cpu(pids)
    await asyncio.sleep(0.25)
    return _tree_cpu(pids) - before >= _IDLE_CPU * 0.25


def _tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_seconds(pid)
    return total


async def measure(
    ctx: Context,
    path: PathUnderTest,
    scenario: str,
    step: str,
    value: float,
    run: Callable[[], Awaitable[RunResult]],
    extra: Callable[[RunResult], dict[str, float]] | None = None,
    also_meter: dict[str, int] | None = None,
) -> Measurement:
    """Run one load step on ``path`` while metering its processes, then let it settle."""
    meter = Meter({**ctx.pids(path), **(also_meter or {})})
    async with meter:
        result = await run()
    summary = summarize(result)
    measurement = Measurement(
        scenario=scenario,
        step=step,
        value=value,
        path=path.name,
        summary=summary,
        usage=dict(meter.usage),
        extra={
            **(extra(result) if extra is not None else {}),
            "other_cpu_percent": meter.other_cpu_percent,
        },
    )
    errors = f", {summary.errors} errors" if summary.errors else ""
    if summary.chunks:
        figures = (
            f"{summary.chunks_per_s:,.0f} chunks/s, TTFB p99 {summary.ttfb_ms.p99:.1f} ms, "
            f"gap p99 {summary.gap_ms.p99:.1f} ms"
        )
    else:
        figures = f"p50 {summary.latency_ms.p50:.2f} ms, p99 {summary.latency_ms.p99:.2f} ms"
    say(f"  {scenario} {step} {path.name}: {figures}{errors}")
    await ctx.settle(f"{scenario} {step} on {path.name}", list((also_meter or {}).values()))
    return measurement
