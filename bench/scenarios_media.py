"""The media scenario: text-to-speech and image replies of a set size through every path.

A speech reply is a WAV file streamed in pieces; an image reply is one PNG in base64 JSON,
which the gateway decodes, checks, stores and answers with its URL as well. Each step keeps
``concurrency`` requests open in a closed loop, so the rate shows what a path sustains. The
bytes of every reply are counted: the report shows the smallest and the largest, so a path
that cut replies short shows.
"""

from collections.abc import Callable
from functools import partial

from bench.context import Context, measure, say
from bench.httpwire import Endpoint
from bench.loadgen import RunResult, closed_loop, summarize
from bench.media import image_request, speech_request
from bench.results import MB, Measurement

_TIMEOUT = 60.0

MEDIA_KINDS: dict[str, Callable[[Endpoint], bytes]] = {
    "speech": speech_request,
    "image": image_request,
}


async def media(ctx: Context) -> list[Measurement]:
    """Speech and image replies at each concurrency of the plan, on every path."""
    plan = ctx.plan
    say(
        f"scenario media: {plan.speech_bytes / 1e6:g} MB speech, "
        f"{plan.image_bytes / 1e6:g} MB images"
    )
    results = []
    for kind, request in MEDIA_KINDS.items():
        for concurrency in plan.media_concurrency:
            for path in ctx.ready_paths():
                endpoint = path.endpoint_or_fail()
                run = partial(
                    closed_loop,
                    endpoint,
                    request(endpoint),
                    concurrency,
                    plan.media_seconds,
                    stream=False,
                    timeout=_TIMEOUT,
                )
                step = f"{concurrency} at a time"
                scenario = f"media-{kind}"
                results.append(
                    await measure(ctx, path, scenario, step, concurrency, run, extra=throughput)
                )
    return results


def throughput(result: RunResult) -> dict[str, float]:
    """Megabytes per second of reply bodies answered whole, and the smallest and largest
    reply, so a path that cut replies short shows."""
    good = [record.received for record in result.records if record.ok]
    if not good:
        return {}
    span = summarize(result).span_s
    return {
        "mb_per_s": sum(good) / MB / span,
        "reply_min_mb": min(good) / MB,
        "reply_max_mb": max(good) / MB,
    }
