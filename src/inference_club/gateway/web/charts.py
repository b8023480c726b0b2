"""Usage per day by kind, and the geometry of the bar charts the page draws as inline SVG."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from inference_club.store import UsageRecord

# Which kind of work an endpoint is; listing models or voices is not charted.
KIND_OF_ENDPOINT = {
    "chat.completions": "text",
    "completions": "text",
    "audio.transcriptions": "transcription",
    "audio.speech": "speech",
    "images.generations": "image",
    "images.edits": "image",
}
KINDS = ("text", "transcription", "speech", "image")
CHART_WIDTH = 720
CHART_HEIGHT = 160


@dataclass
class DayUsage:
    """What one day added up to."""

    day: date
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    tokens: int = 0
    audio_seconds: float = 0.0
    images: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of a chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart ready to draw: bars, the largest value and the day labels to show."""

    title: str
    unit: str
    bars: tuple[Bar, ...]
    maximum: float
    total: float
    ticks: tuple[tuple[float, str], ...]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def daily_usage(records: Iterable[UsageRecord], days: int, today: date) -> list[DayUsage]:
    """One entry per day of the last ``days`` days (oldest first), empty days included."""
    first = today - timedelta(days=days - 1)
    table = {
        first + timedelta(days=offset): DayUsage(first + timedelta(days=offset))
        for offset in range(days)
    }
    for record in records:
        kind = KIND_OF_ENDPOINT.get(record.endpoint)
        entry = table.get(record.started_at.astimezone(UTC).date())
        if kind is None or entry is None:
            continue
        entry.requests[kind] += 1
        entry.tokens += (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        entry.audio_seconds += record.audio_seconds or 0.0
        entry.images += record.image_count or 0
        if record.status_code >= 400:
            entry.errors += 1
    return [table[day] for day in sorted(table)]


def stacked_requests_chart(days: Sequence[DayUsage]) -> Chart:
    """Requests per day, each bar split by kind."""
    maximum = max((sum(day.requests.values()) for day in days), default=0)
    slot = CHART_WIDTH / max(1, len(days))
    bars: list[Bar] = []
    for index, day in enumerate(days):
        bottom = float(CHART_HEIGHT)
        for kind in KINDS:
            count = day.requests[kind]
            if not count:
                continue
            height = CHART_HEIGHT * count / maximum
            bottom -= height
            label = f"{day.day.isoformat()}: {count} {kind} request{'s' if count != 1 else ''}"
            bars.append(_bar(index, slot, bottom, height, kind=kind, label=label))
    total = sum(sum(day.requests.values()) for day in days)
    return Chart("Requests", "requests", tuple(bars), maximum, total, _ticks(days, slot))


def metric_chart(
    days: Sequence[DayUsage], metric: str, title: str, unit: str, *, labels: int = 3
) -> Chart:
    """One number per day (``tokens``, ``audio_seconds`` or ``images``)."""
    values = [float(getattr(day, metric)) for day in days]
    maximum = max(values, default=0.0)
    slot = CHART_WIDTH / max(1, len(days))
    bars = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        if not value:
            continue
        height = CHART_HEIGHT * value / maximum
        shown = f"{value:,.1f}" if not value.is_integer() else f"{int(value):,}"
        label = f"{day.day.isoformat()}: {shown} {unit}"
        bars.append(_bar(index, slot, CHART_HEIGHT - height, height, kind=metric, label=label))
    return Chart(title, unit, tuple(bars), maximum, sum(values), _ticks(days, slot, labels))


def _bar(index: int, slot: float, top: float, height: float, *, kind: str, label: str) -> Bar:
    gap = min(4.0, slot * 0.2)
    return Bar(
        x=round(index * slot + gap / 2, 2),
        y=round(top, 2),
        width=round(slot - gap, 2),
        height=round(height, 2),
        kind=kind,
        label=label,
    )


def _ticks(days: Sequence[DayUsage], slot: float, labels: int = 6) -> tuple[tuple[float, str], ...]:
    # About ``labels`` labels whatever the range, always including the last day.
    step = max(1, -(-len(days) // labels))
    indexes = [*range(len(days) - 1, -1, -step)][::-1]
    return tuple(
        (round(index * slot + slot / 2, 2), days[index].day.strftime("%b %d")) for index in indexes
    )


def today_utc() -> date:
    """Today's date in UTC, the calendar the charts use."""
    return datetime.now(UTC).date()
