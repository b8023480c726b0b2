"""Server-sent events passing through: read usage on the way, strip what the client did not ask."""

from typing import Any

import orjson

_EVENT_END = b"\n\n"
_USAGE_KEY = b'"usage"'
# What OpenAI-style servers put in every chunk but the last when usage is asked for.
_NULL_USAGE = (b'"usage":null', b'"usage": null')


class UsageTap:
    """Splits an SSE byte stream into whole events, records ``usage`` and drops usage-only chunks.

    The gateway asks every backend for ``stream_options.include_usage`` so it can meter streams;
    when the client did not ask for it, the extra chunk is removed before the client sees it.
    """

    __slots__ = ("_pending", "_strip", "usage")

    def __init__(self, *, strip_usage: bool) -> None:
        self._strip = strip_usage
        self._pending = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward now: every complete event in ``data`` and what was held before."""
        if not self._pending and data.endswith(_EVENT_END) and not _may_carry_usage(data):
            # The common case: whole events with nothing to look at. Forward as is.
            return data
        buffer = self._pending + data if self._pending else data
        cut = buffer.rfind(_EVENT_END)
        if cut < 0:
            self._pending = buffer
            return b""
        complete, self._pending = buffer[: cut + 2], buffer[cut + 2 :]
        if not _may_carry_usage(complete):
            return complete
        return b"".join(self._filter(event) for event in complete.split(_EVENT_END) if event)

    def flush(self) -> bytes:
        """Whatever is left when the stream ends (an event without its blank line)."""
        rest, self._pending = self._pending, b""
        if rest and _may_carry_usage(rest):
            return self._filter(rest)
        return rest

    def _filter(self, event: bytes) -> bytes:  # noqa: PLR0911 - one exit per event shape
        whole = event + _EVENT_END
        if not _may_carry_usage(event):
            return whole
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return whole
            if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
                return whole
            self.usage = chunk["usage"]
            if not self._strip:
                return whole
            if not chunk.get("choices"):
                return b""
            # A chunk with content and usage together: keep the content, drop the usage.
            chunk.pop("usage")
            return b"data: " + orjson.dumps(chunk) + _EVENT_END
        return whole


def _may_carry_usage(data: bytes) -> bool:
    """Whether ``data`` has a ``usage`` key that is not null (only those need parsing)."""
    keys = data.count(_USAGE_KEY)
    return keys > 0 and keys != sum(data.count(null) for null in _NULL_USAGE)


def error_event(message: str, error_type: str = "upstream_error") -> bytes:
    """An SSE event carrying an OpenAI error object, which SDKs raise as an API error."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return b"data: " + orjson.dumps(body) + _EVENT_END
