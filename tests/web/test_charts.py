"""Usage charts: records bucketed per UTC day and kind, and bars scaled to the busiest day."""

from datetime import UTC, date, datetime, timedelta

from inference_club.gateway.web.charts import (
    CHART_HEIGHT,
    daily_usage,
    metric_chart,
    stacked_requests_chart,
)
from inference_club.store import UsageRecord

TODAY = date(2026, 3, 10)


def _record(day_offset: int, endpoint: str, **amounts: float) -> UsageRecord:
    started = datetime(2026, 3, 10, 23, 30, tzinfo=UTC) - timedelta(days=day_offset)
    return UsageRecord(
        user_id=1,
        model="m",
        endpoint=endpoint,
        status_code=200,
        started_at=started,
        ended_at=started,
        **amounts,  # type: ignore[arg-type]
    )


def test_records_are_counted_per_day_and_kind() -> None:
    """Each day sums its requests by kind, tokens, audio and images; listing models is ignored."""
    records = [
        _record(0, "chat.completions", prompt_tokens=3, completion_tokens=4),
        _record(0, "audio.speech", audio_seconds=1.5),
        _record(1, "images.generations", image_count=2),
        _record(1, "models"),
        _record(9, "chat.completions", prompt_tokens=100),
    ]

    days = daily_usage(records, days=3, today=TODAY)

    assert [day.day for day in days] == [date(2026, 3, 8), date(2026, 3, 9), TODAY]
    assert days[2].requests == {"text": 1, "transcription": 0, "speech": 1, "image": 0}
    assert (days[2].tokens, days[2].audio_seconds, days[2].images) == (7, 1.5, 0)
    assert days[1].requests["image"] == 1
    assert days[1].images == 2
    assert sum(sum(day.requests.values()) for day in days) == 3


def test_bars_are_scaled_to_the_busiest_day_and_stacked() -> None:
    """The busiest day fills the height; a day's kinds stack without overlapping."""
    records = [_record(0, "chat.completions")] * 3 + [_record(0, "audio.transcriptions")]
    records += [_record(1, "chat.completions")] * 2
    days = daily_usage(records, days=2, today=TODAY)

    chart = stacked_requests_chart(days)
    today_bars = [bar for bar in chart.bars if bar.x > chart.width / 2]

    assert chart.maximum == 4
    assert chart.total == 6
    assert sum(bar.height for bar in today_bars) == CHART_HEIGHT
    assert min(bar.y for bar in today_bars) == 0
    yesterday = [bar for bar in chart.bars if bar.x < chart.width / 2]
    assert [bar.height for bar in yesterday] == [CHART_HEIGHT / 2]
    assert chart.ticks[-1][1] == "Mar 10"


def test_empty_metric_has_no_bars() -> None:
    """A metric with nothing in the period draws no bar and totals zero."""
    days = daily_usage([_record(0, "chat.completions")], days=7, today=TODAY)

    chart = metric_chart(days, "images", "Images", "images")

    assert chart.bars == ()
    assert chart.total == 0
