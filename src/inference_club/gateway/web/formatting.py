"""Jinja filters that turn numbers and times into what a person reads."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def when(moment: datetime | None) -> str:
    """``2026-11-25 20:23 UTC``, or ``never``."""
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    """The ISO 8601 form for a ``<time datetime>`` attribute."""
    return "" if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``2 h ago``, ``5 days ago``, or ``never``."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            plural = "s" if unit == "day" and count > 1 else ""
            return f"{count} {unit}{plural} ago"
    return "just now"  # pragma: no cover - the loop always returns


def milliseconds(value: float | None) -> str:
    """``850 ms`` or ``2.4 s``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s"


def amount(value: float | None) -> str:
    """A count with thousands separators, or ``-``; fractions keep one decimal."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "iso": iso,
    "ago": ago,
    "ms": milliseconds,
    "amount": amount,
}
