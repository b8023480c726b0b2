"""Scenarios run alike on every path: chat, streams, rate search, held streams, upload."""

from functools import partial

from bench.context import Context, measure, say
from bench.httpwire import ConnectionPool, Endpoint, Exchange, build_request, perform
from bench.loadgen import chat_request, closed_loop, open_loop
from bench.media import wav
from bench.mock_backend import CHAT_MODEL, SLOW_MODEL, STT_MODEL
from bench.paths import PathUnderTest
from bench.procstat import Meter
from bench.results import MB, Measurement

_WARM_UP_RATE = 100.0
_WARM_UP_SECONDS = 1.0
_SEARCH_MAX_ERROR_SHARE = 0.01
_SEARCH_MIN_ACHIEVED = 0.95
_SEARCH_GROWTH = 1.5
_SEARCH_BISECTIONS = 3


async def warm_up(ctx: Context) -> None:
    """A short discarded run per path: first requests pay for imports, caches and connects."""
    for path in ctx.ready_paths():
        assert path.endpoint is not None
        raw = chat_request(path.endpoint, CHAT_MODEL, stream=False)
        await open_loop(path.endpoint, raw, _WARM_UP_RATE, duration=_WARM_UP_SECONDS)
    await ctx.settle()


async def chat(ctx: Context) -> list[Measurement]:
    """Non-streamed chat, open loop, at each rate; the paths take turns at every rate."""
    say("scenario chat: non-streamed, open loop")
    await warm_up(ctx)
    results = []
    for rate in ctx.plan.chat_rates:
        for path in ctx.ready_paths():
            results.append(await chat_step(ctx, path, "chat", rate))
    return results


async def chat_step(
    ctx: Context,
    path: PathUnderTest,
    scenario: str,
    rate: int,
    also_meter: dict[str, int] | None = None,
) -> Measurement:
    """One open-loop step of non-streamed chat at ``rate`` on ``path``."""
    endpoint = _endpoint(path)
    raw = chat_request(endpoint, CHAT_MODEL, stream=False)
    return await measure(
        ctx,
        path,
        scenario,
        f"{rate} req/s",
        rate,
        partial(open_loop, endpoint, raw, rate, duration=ctx.plan.chat_seconds),
        also_meter=also_meter,
    )


async def streams(ctx: Context) -> list[Measurement]:
    """Concurrent streams held open in a closed loop, each 64 chunks 20 ms apart."""
    say("scenario streams: concurrent SSE streams")
    plan = ctx.plan
    results = []
    for concurrency in plan.stream_concurrency:
        for path in ctx.ready_paths():
            endpoint = _endpoint(path)
            raw = chat_request(endpoint, CHAT_MODEL, stream=True, usage=True)
            results.append(
                await measure(
                    ctx,
                    path,
                    "streams",
                    f"{concurrency} streams",
                    concurrency,
                    partial(
                        closed_loop,
                        endpoint,
                        raw,
                        concurrency,
                        plan.stream_seconds,
                        ramp=plan.stream_seconds_each,
                        timeout=30.0,
                    ),
                )
            )
    return results


async def max_rate(ctx: Context) -> list[Measurement]:
    """The highest open-loop rate each path serves with p99 under the bound (step search)."""
    plan = ctx.plan
    say(f"scenario max-rate: highest rate with p99 < {plan.search_p99_ms:g} ms")
    results: list[Measurement] = []
    for path in ctx.ready_paths():
        results.extend(await _search(ctx, path))
    return results


async def _search(ctx: Context, path: PathUnderTest) -> list[Measurement]:
    """Grow the rate by half until a step fails, then bisect between the last pass and it."""
    plan = ctx.plan
    steps: list[Measurement] = []
    best, failed, bisections, capped = 0, 0, 0, False
    rate = plan.search_start
    while True:
        # A step fails only if it fails twice: one hiccup must not end the search early.
        for attempt in range(2):
            # Read for every step: a path restarted after the last one has a new endpoint.
            endpoint = _endpoint(path)
            raw = chat_request(endpoint, CHAT_MODEL, stream=False)
            step = await measure(
                ctx,
                path,
                "search",
                f"{rate} req/s" + (" (again)" if attempt else ""),
                rate,
                partial(open_loop, endpoint, raw, rate, duration=plan.search_seconds),
            )
            passed = _sustained(step, rate, plan.search_p99_ms)
            steps.append(_with_extra(step, {"passed": float(passed)}))
            if passed:
                break
        if passed:
            best = rate
        else:
            failed = rate
        if not failed:
            rate = int(rate * _SEARCH_GROWTH)
            if rate > plan.search_cap:
                capped = True
                break
            continue
        following = (best + failed) // 2
        if bisections >= _SEARCH_BISECTIONS or following - best < max(25, best // 20):
            break
        bisections += 1
        rate = following
    extra = {"max_rate": float(best), "capped": float(capped)}
    step_label = f"p99 < {plan.search_p99_ms:g} ms"
    steps.append(Measurement("max-rate", step_label, best, path.name, extra=extra))
    say(f"  max-rate {path.name}: {best} req/s" + (" (the search cap)" if capped else ""))
    return steps


def _sustained(step: Measurement, rate: int, p99_bound_ms: float) -> bool:
    summary = step.summary
    if summary is None or summary.requests == 0:
        return False
    return (
        summary.latency_ms.p99 < p99_bound_ms
        and summary.errors <= _SEARCH_MAX_ERROR_SHARE * summary.requests
        and summary.achieved_rate >= _SEARCH_MIN_ACHIEVED * rate
    )


def _with_extra(measurement: Measurement, extra: dict[str, float]) -> Measurement:
    return Measurement(
        measurement.scenario,
        measurement.step,
        measurement.value,
        measurement.path,
        measurement.summary,
        measurement.usage,
        {**measurement.extra, **extra},
        measurement.error,
    )


async def hold(ctx: Context) -> list[Measurement]:
    """Many slow streams opened over a short ramp and held until they end."""
    plan = ctx.plan
    say(
        f"scenario hold: slow streams ({plan.hold_chunks} chunks, "
        f"{plan.hold_interval * 1000:g} ms apart) held open"
    )
    held_for = plan.hold_chunks * plan.hold_interval
    results = []
    for count in plan.hold_counts:
        for path in ctx.ready_paths(reference=False):
            endpoint = _endpoint(path)
            raw = chat_request(endpoint, SLOW_MODEL, stream=True)
            results.append(
                await measure(
                    ctx,
                    path,
                    "hold",
                    f"{count} streams",
                    count,
                    partial(
                        open_loop,
                        endpoint,
                        raw,
                        count / plan.hold_ramp,
                        count=count,
                        stream=True,
                        timeout=held_for + 60,
                    ),
                )
            )
    return results


def wav_upload(endpoint: Endpoint, size: int) -> bytes:
    """A multipart transcription request carrying a WAV file of about ``size`` bytes."""
    audio = wav(size)
    boundary = "benchboundary7d1f"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{STT_MODEL}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="noise.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return build_request(
        endpoint,
        "POST",
        "/v1/audio/transcriptions",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


async def upload(ctx: Context) -> list[Measurement]:
    """A 10 MB audio upload, one at a time: its duration and each process's memory rise."""
    plan = ctx.plan
    say(f"scenario upload: {plan.upload_bytes / 1e6:g} MB transcription upload")
    results = []
    for path in ctx.ready_paths(reference=False):
        for attempt in range(plan.upload_repeats):
            endpoint = _endpoint(path)  # new after a restart
            raw = wav_upload(endpoint, plan.upload_bytes)
            results.append(await _one_upload(ctx, path, endpoint, raw, attempt))
    return results


async def _one_upload(
    ctx: Context, path: PathUnderTest, endpoint: Endpoint, raw: bytes, attempt: int
) -> Measurement:
    pool = ConnectionPool(endpoint)
    exchange = Exchange(0.0, stream=False)
    meter = Meter(ctx.pids(path), interval=0.005)
    async with meter:
        await perform(pool, raw, exchange, timeout=120.0)
    pool.close()
    seconds = (exchange.end or exchange.sent) - exchange.sent
    rises = {
        f"{name}_rise_mb": (usage.peak_rss - usage.rss_start) / MB
        for name, usage in meter.usage.items()
    }
    outcome = exchange.error or "ok"
    say(f"  upload #{attempt + 1} {path.name}: {seconds * 1000:.0f} ms, {outcome[:120]}")
    await ctx.settle()
    return Measurement(
        "upload",
        f"#{attempt + 1}",
        attempt + 1,
        path.name,
        usage=dict(meter.usage),
        extra={"seconds": seconds, **rises, "other_cpu_percent": meter.other_cpu_percent},
        error=exchange.error,
    )


def _endpoint(path: PathUnderTest) -> Endpoint:
    assert path.endpoint is not None
    return path.endpoint
