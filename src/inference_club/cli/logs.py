"""Structured, quiet-by-default logging for every process: one ``key=value`` line per event."""

import logging
import re
import sys
import time
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}
_NEEDS_QUOTES = re.compile(r'[ "=\n]')


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value`` from a record and its ``extra``."""

    # The agent formats a line per request: the date part is made once per second.
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record; extra fields follow the message."""
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        stamp = self._stamp
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts.extend(
            f"{key}={_quote(value)}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        )
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _quote(value: Any) -> str:
    if type(value) is int:
        return str(value)
    text = str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def configure_logging(level: str) -> None:
    """Send our logs to stderr at ``level``; third-party libraries speak only at warning."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("inference_club").setLevel(level.upper())
