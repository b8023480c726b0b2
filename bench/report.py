"""``results.md`` (tables a person reads) and ``results.json`` (everything, for tools)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import LoadSummary
from bench.paths import BARE_RELAY
from bench.results import Check, Measurement
from bench.scenarios_cost import INSTRUCTIONS

# The processes a path runs, and the servers some steps also meter.
_PROXIES = ("gateway", "agent", "litellm", "agents", "front", "back")
_SERVERS = (*_PROXIES, "redis", "postgres")
_NONE = "n/a"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the report says about the run itself."""

    started: str
    mode: str
    cpus: int
    python: str
    paths: dict[str, str]
    notes: tuple[str, ...]


def _ms(value: float) -> str:
    return _NONE if math.isnan(value) else f"{value:.2f}"


def _servers(measurement: Measurement, figure: Callable[[str], float | None], unit: str) -> str:
    parts = []
    for name in _SERVERS:
        value = figure(name)
        if value is not None:
            parts.append(f"{name} {value:.0f}{unit}")
    return ", ".join(parts) or _NONE


def _direct(rows: Sequence[Measurement], row: Measurement) -> Measurement | None:
    """What a row's ``+`` columns compare with: direct at the same step, or for the routing
    sweeps (gateway only) the smallest size."""
    if row.scenario.startswith("routing"):
        smallest = min(rows, key=lambda other: other.value)
        return smallest if smallest is not row else None
    for other in rows:
        if other.path == "direct" and other.value == row.value:
            return other
    return None


def _added(row: Measurement, direct: Measurement | None, pick: Callable[[Any], float]) -> str:
    if direct is None or direct.summary is None or row.summary is None or row is direct:
        return ""
    return f"{pick(row.summary) - pick(direct.summary):+.2f}"


def _other(row: Measurement) -> str:
    value = row.extra.get("other_cpu_percent")
    return _NONE if value is None else f"{value:.0f}%"


def _table(header: Sequence[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return [*out, ""]


# A table line of a row, given the row, its load summary and the row its + columns compare with.
Cells = Callable[[Measurement, LoadSummary, Measurement | None], list[str]]


def _step_lines(rows: Sequence[Measurement], cells: Cells) -> list[list[str]]:
    """A table's lines: ``cells`` of each row that has a load summary, given the row, its
    summary and what its ``+`` columns compare with."""
    return [cells(row, row.summary, _direct(rows, row)) for row in rows if row.summary is not None]


def _process_cells(row: Measurement, memory: Callable[[str], float | None]) -> list[str]:
    """CPU share, waiting for a core, CPU per request and ``memory`` of each process."""
    return [
        _servers(row, row.cpu_percent, "%"),
        _servers(row, row.waiting_percent, "%"),
        _servers(row, row.cpu_us_per_request, " µs"),
        _servers(row, memory, " MB"),
    ]


def _latency_cells(row: Measurement, s: LoadSummary, direct: Measurement | None) -> list[str]:
    return [
        row.step,
        row.path,
        f"{s.ok}/{s.errors}",
        f"{s.achieved_rate:,.0f}",
        _ms(s.latency_ms.p50),
        _ms(s.latency_ms.p90),
        _ms(s.latency_ms.p99),
        _ms(s.latency_ms.max),
        _added(row, direct, lambda x: x.latency_ms.p50),
        _added(row, direct, lambda x: x.latency_ms.p99),
        *_process_cells(row, row.peak_mb),
        f"{row.cpu_percent('mock') or 0:.0f}%",
        f"{s.loadgen_cpu_percent:.0f}%",
        _other(row),
    ]


def _latency_table(rows: Sequence[Measurement]) -> list[str]:
    header = ["step", "path", "ok/err", "req/s", "p50 ms", "p90", "p99", "max", "+p50", "+p99"]
    header += ["CPU (1 core = 100%)", "waiting for a core", "CPU per request", "peak RSS"]
    header += ["mock CPU", "loadgen CPU"]
    header += ["other CPU"]
    return _table(header, _step_lines(rows, _latency_cells))


def _stream_cells(row: Measurement, s: LoadSummary, direct: Measurement | None) -> list[str]:
    return [
        row.step,
        row.path,
        f"{s.ok}/{s.errors}",
        f"{s.chunks_per_s:,.0f}",
        _ms(s.ttfb_ms.p50),
        _ms(s.ttfb_ms.p99),
        _ms(s.gap_ms.p50),
        _ms(s.gap_ms.p99),
        _ms(s.gap_ms.max),
        _added(row, direct, lambda x: x.ttfb_ms.p50),
        _added(row, direct, lambda x: x.gap_ms.p99),
        *_process_cells(row, row.peak_mb),
        f"{s.loadgen_cpu_percent:.0f}%",
        _other(row),
    ]


def _stream_table(rows: Sequence[Measurement]) -> list[str]:
    header = ["step", "path", "ok/err", "chunks/s", "TTFB p50", "TTFB p99", "gap p50"]
    header += ["gap p99", "gap max", "+TTFB p50", "+gap p99", "CPU", "waiting for a core"]
    header += ["CPU per stream", "peak RSS"]
    header += ["loadgen CPU"]
    header += ["other CPU"]
    return _table(header, _step_lines(rows, _stream_cells))


def _reply_sizes(row: Measurement) -> str:
    """The reply size in MB, or the smallest and largest when they differ."""
    smallest, largest = row.extra.get("reply_min_mb"), row.extra.get("reply_max_mb")
    if smallest is None or largest is None:
        return _NONE
    low, high = f"{smallest:.2f}", f"{largest:.2f}"
    return high if low == high else f"{low} to {high}"


def _media_cells(row: Measurement, s: LoadSummary, direct: Measurement | None) -> list[str]:
    return [
        row.step,
        row.path,
        f"{s.ok}/{s.errors}",
        f"{s.achieved_rate:,.1f}",
        _reply_sizes(row),
        f"{row.extra.get('mb_per_s', 0.0):,.1f}",
        _ms(s.ttfb_ms.p50),
        _ms(s.latency_ms.p50),
        _ms(s.latency_ms.p99),
        _added(row, direct, lambda x: x.latency_ms.p50),
        *_process_cells(row, row.peak_rise_mb),
        f"{row.cpu_percent('mock') or 0:.0f}%",
        f"{s.loadgen_cpu_percent:.0f}%",
        _other(row),
    ]


def _media_table(rows: Sequence[Measurement]) -> list[str]:
    header = ["step", "path", "ok/err", "req/s", "reply MB", "MB/s", "TTFB p50", "p50 ms"]
    header += ["p99", "+p50"]
    header += ["CPU", "waiting for a core", "CPU per request", "peak RSS rise"]
    header += ["mock CPU", "loadgen CPU", "other CPU"]
    return _table(header, _step_lines(rows, _media_cells))


def _extra_table(rows: Sequence[Measurement], columns: Sequence[tuple[str, str]]) -> list[str]:
    lines = []
    for row in rows:
        cells = [row.step, row.path]
        for key, _ in columns:
            value = row.extra.get(key)
            cells.append(_NONE if value is None else f"{value:,.2f}".rstrip("0").rstrip("."))
        cells += [_servers(row, row.cpu_percent, "%"), (row.error or "")[:100]]
        lines.append(cells)
    return _table(["step", "path", *[title for _, title in columns], "CPU", "error"], lines)


def _cost_table(rows: Sequence[Measurement], columns: Sequence[tuple[str, str]]) -> list[str]:
    """Instructions per request by process, and each path's total against the bare relay's."""
    reference = next((row for row in rows if row.path == BARE_RELAY), None)
    base = reference.extra.get(f"total{INSTRUCTIONS}") if reference is not None else None
    lines = []
    for row in rows:
        cells = [row.step, row.path]
        for key, _ in columns:
            value = row.extra.get(key)
            cells.append(_NONE if value is None else f"{value:,.0f}")
        total = row.extra.get(f"total{INSTRUCTIONS}")
        cells.append(_NONE if total is None or not base else f"{total / base:.1f} times")
        cells.append((row.error or "")[:100])
        lines.append(cells)
    header = ["step", "path", *[title for _, title in columns], "vs bare relay", "error"]
    return _table(header, lines)


def _targets(checks: Sequence[Check]) -> list[str]:
    verdict = {True: "✅ met", False: "❌ missed", None: "not measured"}
    lines = [
        [c.target, c.measured, c.litellm or _NONE, c.bare_relay or _NONE, verdict[c.passed]]
        for c in checks
    ]
    header = ["target", "gateway + agent", "LiteLLM (comparison)", "bare relay (reference)"]
    return _table([*header, "verdict"], lines)


_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("chat", "Non-streamed chat, open loop", "latency"),
    ("streams", "Concurrent streams (64 chunks, 20 ms apart), closed loop", "stream"),
    (
        "stores",
        "Non-streamed chat with the shared stores: rate limits counted in Redis, data in "
        "PostgreSQL (the default gateway counts in memory and keeps its data in SQLite)",
        "latency",
    ),
    ("search", "Rate search steps (p99 < 50 ms, < 1 % errors, ≥ 95 % of the rate)", "latency"),
    ("hold", "Slow streams held open", "stream"),
    ("media-speech", "Text to speech: WAV replies streamed, closed loop", "media"),
    ("media-image", "Image generation: a PNG reply in base64 JSON, closed loop", "media"),
    (
        "routing-models",
        "Routing: one more provider with N models (+ vs smallest N)",
        "latency",
    ),
    (
        "routing-providers",
        "Routing: N more providers, one model each (+ vs smallest N)",
        "latency",
    ),
)


_TABLES: dict[str, Callable[[Sequence[Measurement]], list[str]]] = {
    "latency": _latency_table,
    "stream": _stream_table,
    "media": _media_table,
}


def markdown(info: RunInfo, measurements: Sequence[Measurement], checks: Sequence[Check]) -> str:
    """The whole report as Markdown."""
    out = [
        "# inference-club benchmark",
        "",
        f"Run {info.started}, {info.mode} mode, {info.cpus} CPU cores, Python {info.python}.",
        "Every path reaches the same mock backend. The load generator runs in the runner process "
        "and shares the cores with everything under test (its CPU use is in the tables).",
        "Latency counts from each request's scheduled send time (open loop, no coordinated "
        "omission); percentiles are exact, nearest rank. `+` columns are the difference from "
        "direct at the same step of the same run. Times in ms. *other CPU* is what processes "
        "outside the benchmark used meanwhile: where it is high, that step's numbers are noise. "
        "*Waiting for a core* is the time a process was ready to run while every core was taken: "
        "where it is high, the machine, not that process, set the pace.",
        "",
        "Paths: " + "; ".join(f"**{name}**: {state}" for name, state in info.paths.items()),
        "",
        "## Targets",
        "",
        *_targets(checks),
    ]
    for scenario, title, kind in _SECTIONS:
        rows = [m for m in measurements if m.scenario == scenario]
        if rows:
            out += [f"## {title}", ""]
            out += _TABLES[kind](rows)
    listing = [m for m in measurements if m.scenario.startswith("routing")]
    if listing:
        out += ["## Routing: listing the models", ""]
        columns = [("models_listed", "models listed"), ("models_list_p50_ms", "list p50 ms")]
        out += _extra_table(listing, columns)
    best = [m for m in measurements if m.scenario == "max-rate"]
    if best:
        out += ["## Highest rate with p99 < 50 ms", ""]
        out += _extra_table(best, [("max_rate", "req/s"), ("capped", "hit cap")])
    idle = [m for m in measurements if m.scenario == "idle"]
    if idle:
        out += ["## Idle agents on a fresh gateway", ""]
        columns = [("connected", "connected"), ("failed", "failed"), ("connect_seconds", "s")]
        columns += [("rss_before_mb", "RSS before MB"), ("rss_after_mb", "RSS after MB")]
        out += _extra_table(idle, [*columns, ("per_agent_kb", "KB per agent")])
    uploads = [m for m in measurements if m.scenario == "upload"]
    if uploads:
        out += ["## 10 MB transcription upload", ""]
        columns = [("seconds", "seconds")]
        columns += [(f"{name}_rise_mb", f"{name} peak rise MB") for name in (*_PROXIES, "mock")]
        out += _extra_table(uploads, columns)
    costs = [m for m in measurements if m.scenario == "cost"]
    if costs:
        out += ["## Instructions per request (callgrind, user space only)", ""]
        processes = ("gateway", "agent", "front", "back", "total")
        out += _cost_table(costs, [(f"{name}{INSTRUCTIONS}", name) for name in processes])
    if info.notes:
        out += ["## Notes", "", *[f"- {note}" for note in info.notes], ""]
    return "\n".join(out)


def write(
    out_dir: Path, info: RunInfo, measurements: Sequence[Measurement], checks: Sequence[Check]
) -> tuple[Path, Path]:
    """Write both files; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "results.md"
    json_path = out_dir / "results.json"
    md_path.write_text(markdown(info, measurements, checks))
    document = {"run": info, "targets": checks, "measurements": measurements}
    # orjson writes NaN (a figure that could not be measured) as null.
    json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return md_path, json_path
