"""The issue's performance targets, checked against one run (ratios against direct, same run)."""

from collections.abc import Callable, Sequence

from bench.loadgen import LoadSummary
from bench.paths import BARE_RELAY
from bench.results import Check, Measurement, find

# A step whose requests failed more often than this proves nothing about its latency.
_MAX_ERROR_SHARE = 0.01
_NOT_MEASURED = "not measured"
# The path the targets are for, then the ones shown beside it.
_PATHS = ("gateway", "litellm", BARE_RELAY)


def _summary(
    measurements: Sequence[Measurement], scenario: str, path: str, value: float
) -> LoadSummary | None:
    found = find(measurements, scenario, path, value)
    return found.summary if found is not None else None


def _clean(summary: LoadSummary) -> bool:
    return summary.errors <= _MAX_ERROR_SHARE * max(summary.requests, 1)


def _errors(summary: LoadSummary) -> str:
    return f", {summary.errors}/{summary.requests} failed" if summary.errors else ""


def _added(
    measurements: Sequence[Measurement],
    scenario: str,
    value: float,
    figure: Callable[[LoadSummary], float],
    path: str,
) -> tuple[float, str] | None:
    direct = _summary(measurements, scenario, "direct", value)
    other = _summary(measurements, scenario, path, value)
    if direct is None or other is None:
        return None
    added = figure(other) - figure(direct)
    text = f"{added:+.2f} ms ({figure(other):.2f} vs direct {figure(direct):.2f}{_errors(other)})"
    return (added if _clean(other) else float("inf")), text


def _added_check(
    measurements: Sequence[Measurement],
    target: str,
    scenario: str,
    value: float,
    figure: Callable[[LoadSummary], float],
    bound: float,
) -> Check:
    texts: dict[str, str] = {}
    passed: bool | None = None
    for path in _PATHS:
        added = _added(measurements, scenario, value, figure, path)
        if added is None:
            continue
        texts[path] = added[1]
        if path == "gateway":
            passed = added[0] <= bound
    return _check(target, texts, passed)


def _absolute_check(
    measurements: Sequence[Measurement],
    target: str,
    scenario: str,
    value: float,
    figure: Callable[[LoadSummary], float],
    bound: float,
) -> Check:
    texts: dict[str, str] = {}
    passed: bool | None = None
    for path in _PATHS:
        summary = _summary(measurements, scenario, path, value)
        if summary is None:
            continue
        texts[path] = f"{figure(summary):.1f} ms{_errors(summary)}"
        if path == "gateway":
            passed = figure(summary) <= bound and _clean(summary)
    return _check(target, texts, passed)


def _check(target: str, texts: dict[str, str], passed: bool | None) -> Check:
    return Check(
        target,
        texts.get("gateway", _NOT_MEASURED),
        passed,
        texts.get("litellm", ""),
        texts.get(BARE_RELAY, ""),
    )


# A figure for the ratio targets: the value, whether the step was clean, and a note.
_Figure = tuple[float, bool, str]


def _ratio_check(
    target: str, values: dict[str, _Figure | None], share: float, unit: str, note: str = ""
) -> Check:
    direct = values.get("direct")
    texts: dict[str, str] = {}
    passed: bool | None = None
    for path in _PATHS:
        figure = values.get(path)
        if figure is None or direct is None or not direct[0]:
            continue
        value, clean, errors = figure
        texts[path] = (
            f"{value:,.0f} {unit} = {value / direct[0]:.0%} of direct {direct[0]:,.0f}"
            f"{note}{errors}"
        )
        if path == "gateway":
            passed = clean and value >= share * direct[0]
    return _check(target, texts, passed)


def _chunks_per_s(measurements: Sequence[Measurement], path: str, value: float) -> _Figure | None:
    summary = _summary(measurements, "streams", path, value)
    if summary is None:
        return None
    return summary.chunks_per_s, _clean(summary), _errors(summary)


def _max_rate(measurements: Sequence[Measurement], path: str) -> _Figure | None:
    found = find(measurements, "max-rate", path)
    if found is None or "max_rate" not in found.extra:
        return None
    return found.extra["max_rate"], True, ""


def _largest(measurements: Sequence[Measurement], scenario: str) -> Measurement | None:
    candidates = [m for m in measurements if m.scenario == scenario and m.path == "gateway"]
    return max(candidates, key=lambda m: m.value, default=None)


def _held_streams_check(measurements: Sequence[Measurement]) -> Check:
    held = _largest(measurements, "hold")
    if held is None:
        return Check("2,000 slow streams: gateway peak < 300 MB", _NOT_MEASURED, None)
    peak = held.peak_mb("gateway")
    litellm = find(measurements, "hold", "litellm", held.value)
    litellm_peak = litellm.peak_mb("litellm") if litellm is not None else None
    return Check(
        f"{held.value:,.0f} slow streams: gateway peak < 300 MB (target at 2,000)",
        f"{peak:.0f} MB (agent {held.peak_mb('agent') or 0:.0f} MB)" if peak else _NOT_MEASURED,
        peak < 300 if peak else None,
        f"{litellm_peak:.0f} MB" if litellm_peak is not None else "",
    )


def _idle_check(measurements: Sequence[Measurement]) -> Check:
    idle = _largest(measurements, "idle")
    per_agent = idle.extra.get("per_agent_kb") if idle is not None else None
    if idle is None or per_agent is None:
        return Check("idle agents: ≤ 40 KB each", _NOT_MEASURED, None)
    failed = f", {idle.extra.get('failed', 0):.0f} failed to connect" if idle.error else ""
    return Check(
        f"{idle.value:,.0f} idle agents: ≤ 40 KB each",
        f"{per_agent:.1f} KB{failed}",
        per_agent <= 40 and not idle.error,
    )


def _upload_rise(measurements: Sequence[Measurement], path: str) -> tuple[float | None, str]:
    uploads = [m for m in measurements if m.scenario == "upload" and m.path == path]
    if not uploads:
        return None, ""
    failures = [m.error for m in uploads if m.error]
    if failures:
        return None, f"failed: {failures[0][:120]}"
    rise = max(m.extra.get(f"{path}_rise_mb", 0.0) for m in uploads)
    return rise, f"+{rise:.1f} MB"


def _upload_check(measurements: Sequence[Measurement]) -> Check:
    rise, text = _upload_rise(measurements, "gateway")
    uploaded = any(m.scenario == "upload" and m.path == "gateway" for m in measurements)
    return Check(
        "10 MB upload raises gateway peak by < 2 MB",
        text or _NOT_MEASURED,
        (rise is not None and rise < 2) if uploaded else None,
        _upload_rise(measurements, "litellm")[1],
    )


def _memory_checks(measurements: Sequence[Measurement]) -> list[Check]:
    return [
        _held_streams_check(measurements),
        _idle_check(measurements),
        _upload_check(measurements),
    ]


def evaluate(measurements: Sequence[Measurement]) -> list[Check]:
    """Every target with its measured value; ``passed`` is None when it was not measured."""
    capped = find(measurements, "max-rate", "direct")
    cap_note = " (direct hit the search cap)" if capped and capped.extra.get("capped") else ""
    return [
        _added_check(
            measurements,
            "non-streamed 1,000 req/s: added p50 ≤ 0.5 ms",
            "chat",
            1000,
            lambda s: s.latency_ms.p50,
            0.5,
        ),
        _added_check(
            measurements,
            "non-streamed 1,000 req/s: added p99 ≤ 2 ms",
            "chat",
            1000,
            lambda s: s.latency_ms.p99,
            2.0,
        ),
        _ratio_check(
            "highest rate with p99 < 50 ms ≥ 2/3 of direct",
            {path: _max_rate(measurements, path) for path in ("direct", *_PATHS)},
            2 / 3,
            "req/s",
            cap_note,
        ),
        _ratio_check(
            "500 streams: ≥ 85 % of direct chunks/s",
            {p: _chunks_per_s(measurements, p, 500) for p in ("direct", *_PATHS)},
            0.85,
            "chunks/s",
        ),
        _absolute_check(
            measurements,
            "500 streams: TTFB p99 ≤ 100 ms",
            "streams",
            500,
            lambda s: s.ttfb_ms.p99,
            100,
        ),
        _absolute_check(
            measurements,
            "500 streams: chunk gap p99 ≤ 40 ms",
            "streams",
            500,
            lambda s: s.gap_ms.p99,
            40,
        ),
        _added_check(
            measurements,
            "100 streams: added TTFB p50 ≤ 0.5 ms",
            "streams",
            100,
            lambda s: s.ttfb_ms.p50,
            0.5,
        ),
        _added_check(
            measurements,
            "100 streams: added chunk gap p99 ≤ 1 ms",
            "streams",
            100,
            lambda s: s.gap_ms.p99,
            1.0,
        ),
        *_memory_checks(measurements),
    ]
