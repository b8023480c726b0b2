"""Open-loop and closed-loop load generation, and the summary of a run.

Open loop: the i-th request is scheduled at ``t0 + i / rate`` whatever happened before, and its
latency counts from that scheduled time, so a server that stalls shows in the tail instead of
slowing the generator down (no coordinated omission). Closed loop: ``concurrency`` workers each
keep one request (typically a long stream) open at a time.

Python's cycle collector does not run while a run is timed (``_without_collector``): the process
that generates the load also keeps every step's records, and a full collection over that heap
paused it for 50-100 ms in a full benchmark run, a stall the open loop then charged to whichever
path was being measured. The garbage of earlier steps is collected before the run's clock
starts, and the run's own once it ends.
"""

import argparse
import asyncio
import functools
import gc
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import ParamSpec

import orjson

from bench.httpwire import ConnectionPool, Endpoint, Exchange, build_request, perform
from bench.sse import gaps
from bench.stats import Distribution, distribution

# Requests fire a little after the call so the first ones are not late by the setup itself.
_LEAD = 0.02
_MAX_ERROR_SAMPLES = 5
_TICK = 0.001
_P = ParamSpec("_P")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request; times are ``time.perf_counter()`` seconds."""

    scheduled: float
    sent: float
    first_byte: float | None
    end: float
    status: int
    error: str | None
    event_times: tuple[float, ...]
    # Bytes of the response body.
    received: int = 0

    @property
    def ok(self) -> bool:
        """Whether the request succeeded (2xx, complete, and for SSE ended by ``[DONE]``)."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one load run measured."""

    started: float
    planned_duration: float
    records: tuple[RequestRecord, ...]
    peak_connections: int
    max_dispatch_lag: float
    cpu_seconds: float
    # Where the steady state is (after the ramp); chunks per second are counted inside it.
    steady: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """The numbers a report shows for one run; latencies in milliseconds."""

    requests: int
    ok: int
    errors: int
    error_samples: tuple[str, ...]
    achieved_rate: float
    # From the first scheduled request to the last response.
    span_s: float
    latency_ms: Distribution
    # From the actual send instead of the schedule: the server's share of the latency.
    service_ms: Distribution
    ttfb_ms: Distribution
    gap_ms: Distribution
    chunks: int
    chunks_per_s: float
    peak_connections: int
    max_dispatch_lag_ms: float
    loadgen_cpu_s: float

    @property
    def loadgen_cpu_percent(self) -> float:
        """The load generator's own CPU use, in percent of one core."""
        return 100 * self.loadgen_cpu_s / self.span_s


def _without_collector(
    run: Callable[_P, Awaitable[RunResult]],
) -> Callable[_P, Coroutine[None, None, RunResult]]:
    """``run``, with Python's cycle collector run just before it and paused while it runs."""

    @functools.wraps(run)
    async def paused(*args: _P.args, **kwargs: _P.kwargs) -> RunResult:
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            return await run(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


def _record(exchange: Exchange) -> RequestRecord:
    return RequestRecord(
        scheduled=exchange.scheduled,
        sent=exchange.sent,
        first_byte=exchange.first_byte,
        end=exchange.end if exchange.end is not None else time.perf_counter(),
        status=exchange.status,
        error=exchange.error,
        event_times=tuple(exchange.clock.times) if exchange.clock is not None else (),
        received=exchange.received,
    )


@_without_collector
async def open_loop(
    endpoint: Endpoint,
    raw: bytes,
    rate: float,
    *,
    duration: float | None = None,
    count: int | None = None,
    stream: bool = False,
    timeout: float = 10.0,
) -> RunResult:
    """Send ``raw`` at ``rate`` per second for ``duration`` seconds (or ``count`` requests)."""
    if rate <= 0:
        msg = "rate must be positive"
        raise ValueError(msg)
    total = count if count is not None else math.ceil((duration or 0) * rate)
    pool = ConnectionPool(endpoint)
    exchanges: list[Exchange] = []
    in_flight: set[asyncio.Task[None]] = set()
    cpu_before = time.process_time()
    t0 = time.perf_counter() + _LEAD
    max_lag = 0.0
    index = 0
    while index < total:
        due = t0 + index / rate
        now = time.perf_counter()
        if due > now:
            # Event loop timers tick in milliseconds: a shorter sleep would spin the CPU.
            await asyncio.sleep(max(due - now, _TICK))
            continue
        max_lag = max(max_lag, now - due)
        exchange = Exchange(due, stream)
        exchanges.append(exchange)
        task = asyncio.create_task(perform(pool, raw, exchange, timeout))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        index += 1
    if in_flight:
        await asyncio.gather(*in_flight)
    pool.close()
    return RunResult(
        started=t0,
        planned_duration=total / rate,
        records=tuple(_record(exchange) for exchange in exchanges),
        peak_connections=pool.peak_open,
        max_dispatch_lag=max_lag,
        cpu_seconds=time.process_time() - cpu_before,
    )


@_without_collector
async def closed_loop(
    endpoint: Endpoint,
    raw: bytes,
    concurrency: int,
    duration: float,
    *,
    stream: bool = True,
    ramp: float = 0.0,
    timeout: float = 30.0,
) -> RunResult:
    """Keep ``concurrency`` requests open for ``duration`` s, workers starting over ``ramp`` s."""
    pool = ConnectionPool(endpoint)
    exchanges: list[Exchange] = []
    cpu_before = time.process_time()
    t0 = time.perf_counter() + _LEAD
    stop_at = t0 + ramp + duration

    async def worker(number: int) -> None:
        await asyncio.sleep(max(0.0, t0 + ramp * number / concurrency - time.perf_counter()))
        while time.perf_counter() < stop_at:
            exchange = Exchange(time.perf_counter(), stream)
            exchanges.append(exchange)
            await perform(pool, raw, exchange, timeout)
            if exchange.error is not None:
                # A refusing server would otherwise turn every worker into a busy loop.
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker(number) for number in range(concurrency)))
    pool.close()
    return RunResult(
        started=t0,
        planned_duration=ramp + duration,
        records=tuple(_record(exchange) for exchange in exchanges),
        peak_connections=pool.peak_open,
        max_dispatch_lag=0.0,
        cpu_seconds=time.process_time() - cpu_before,
        steady=(t0 + ramp, stop_at),
    )


def summarize(result: RunResult) -> LoadSummary:
    """Percentiles and rates of one run."""
    records = result.records
    good = [record for record in records if record.ok]
    samples: list[str] = []
    for record in records:
        if record.error is not None and record.error not in samples:
            samples.append(record.error)
            if len(samples) == _MAX_ERROR_SAMPLES:
                break
    last_end = max((record.end for record in records), default=result.started)
    span = max(result.planned_duration, last_end - result.started, 1e-9)
    all_events = [stamp for record in good for stamp in record.event_times]
    if result.steady is not None and result.steady[1] > result.steady[0]:
        low, high = result.steady
        in_window = sum(1 for stamp in all_events if low <= stamp < high)
        chunks_per_s = in_window / (high - low)
    else:
        chunks_per_s = len(all_events) / span
    return LoadSummary(
        requests=len(records),
        ok=len(good),
        errors=len(records) - len(good),
        error_samples=tuple(samples),
        achieved_rate=len(good) / span,
        span_s=span,
        latency_ms=distribution(r.end - r.scheduled for r in good).scaled(1000),
        service_ms=distribution(r.end - r.sent for r in good).scaled(1000),
        ttfb_ms=distribution(
            r.first_byte - r.scheduled for r in good if r.first_byte is not None
        ).scaled(1000),
        gap_ms=distribution(gap for r in good for gap in gaps(r.event_times)).scaled(1000),
        chunks=len(all_events),
        chunks_per_s=chunks_per_s,
        peak_connections=result.peak_connections,
        max_dispatch_lag_ms=result.max_dispatch_lag * 1000,
        loadgen_cpu_s=result.cpu_seconds,
    )


def chat_request(endpoint: Endpoint, model: str, *, stream: bool, usage: bool = False) -> bytes:
    """A small chat completion request for ``model``."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    return build_request(endpoint, "POST", "/v1/chat/completions", orjson.dumps(body))


def main(argv: list[str] | None = None) -> int:
    """Load one endpoint from the command line and print the summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    parser.add_argument("--concurrency", type=int, help="closed loop: streams held open")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args(argv)
    # The key comes from the environment so it never shows in a process list.
    endpoint = Endpoint("cli", args.host, args.port, os.environ.get("BENCH_API_KEY"))
    raw = chat_request(endpoint, args.model, stream=args.stream or bool(args.concurrency))
    if args.concurrency:
        run = closed_loop(endpoint, raw, args.concurrency, args.duration)
    else:
        run = open_loop(
            endpoint, raw, args.rate or 100.0, duration=args.duration, stream=args.stream
        )
    result = _run(run)
    summary = summarize(result)
    sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _run(coroutine: Coroutine[None, None, RunResult]) -> RunResult:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
