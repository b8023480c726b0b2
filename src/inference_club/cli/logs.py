"""Structured, quiet-by-default logging for every process: one ``key=value`` line per event."""

import itertools
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

_OWN = logging.LogRecord("", 0, "", 0, "", (), None).__dict__
_RESERVED = frozenset(_OWN) | {"message"}
# A record's own attributes come first in its __dict__; ``extra`` fields follow them.
_OWN_ATTRIBUTES = len(_OWN)
_NEEDS_QUOTES = re.compile(r'[ "=\n]')
# Short values (models, paths, outcomes) recur on every line: each is quoted once.
_QUOTED_CACHE_SIZE = 1024
_QUOTED_CACHE_MAX_LENGTH = 80
# A timestamp's milliseconds as written, by their value: formatting one costs several times
# more than taking it from here.
_MILLISECONDS = tuple(f"{value:03d}" for value in range(1000))


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
        milliseconds = int(record.msecs)
        shown = _MILLISECONDS[milliseconds] if 0 <= milliseconds < 1000 else f"{milliseconds:03d}"
        parts = [f"ts={self._stamp}.{shown}Z", _head(record)]
        _add_fields(parts, record)
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


# ``level=... logger=... msg=...`` of the lines whose message has no arguments, by level,
# logger and message: the same few recur on every line of a busy agent.
_heads: dict[tuple[str, str, str], str] = {}
_HEADS_SIZE = 256


def _head(record: logging.LogRecord) -> str:
    message = record.msg
    if record.args or type(message) is not str:
        return _head_text(record.levelname, record.name, record.getMessage())
    key = (record.levelname, record.name, message)
    head = _heads.get(key)
    if head is None:
        if len(_heads) >= _HEADS_SIZE:
            _heads.clear()
        head = _heads[key] = _head_text(*key)
    return head


def _head_text(level: str, name: str, message: str) -> str:
    return f"level={level.lower()} logger={name} msg={_quote(message)}"


# ``key=`` for each extra field's name seen so far, "" for a name never shown.
_prefixes: dict[str, str] = {}
_PREFIXES_SIZE = 256


def _add_fields(parts: list[str], record: logging.LogRecord) -> None:
    """Append ``key=value`` for each field ``extra`` gave the record, in order."""
    prefixes = _prefixes
    quoted = _quoted
    for key, value in itertools.islice(record.__dict__.items(), _OWN_ATTRIBUTES, None):
        prefix = prefixes.get(key)
        if prefix is None:
            if len(prefixes) >= _PREFIXES_SIZE:
                prefixes.clear()  # names are a program's own, but bound it all the same
            prefix = prefixes[key] = "" if key in _RESERVED or key[:1] == "_" else f"{key}="
        if prefix:
            # Written out, not calls per field: a busy agent formats a line per request.
            kind = type(value)
            if kind is int:
                parts.append(f"{prefix}{value}")
            else:
                text = quoted.get(value) if kind is str else None
                parts.append(prefix + (_quote(value) if text is None else text))


_quoted: dict[str, str] = {}


def _quote(value: Any) -> str:
    if type(value) is int:
        return str(value)
    text = str(value)
    quoted = _quoted.get(text)
    if quoted is None:
        quoted = _quote_text(text)
        if len(text) <= _QUOTED_CACHE_MAX_LENGTH:
            if len(_quoted) >= _QUOTED_CACHE_SIZE:
                _quoted.clear()
            _quoted[text] = quoted
    return quoted


def _quote_text(text: str) -> str:
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class BurstBufferedHandler(logging.StreamHandler[TextIO]):
    """Writes a line at once when lines are rare; in a burst, batches them for ``interval`` s.

    The agent logs a line per request: a thousand requests a second would otherwise cost a
    thousand writes. A line after a quiet spell, and any warning or error, is written at
    once; lines that follow it within ``interval`` wait for the next flush (a daemon thread
    flushes every ``interval``), so nothing waits longer than that.
    """

    def __init__(self, stream: TextIO, interval: float = 0.25) -> None:
        super().__init__(stream)
        self._interval = interval
        self._lines: list[str] = []
        self._last_write = 0.0
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every_interval, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line; write now unless a write happened just before."""
        try:
            line = self.format(record)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)
            return
        self._lines.append(line)  # Handler.handle holds self.lock around emit
        if (
            record.levelno >= logging.WARNING
            or time.monotonic() - self._last_write >= self._interval
        ):
            self._write(record)

    def _write(self, record: logging.LogRecord | None = None) -> None:
        if not self._lines:
            return
        self._last_write = time.monotonic()
        text = "\n".join(self._lines) + "\n"
        self._lines = []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed stream must not break the process
            if record is not None:
                self.handleError(record)

    def flush(self) -> None:
        """Write whatever is queued."""
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._write()

    def _flush_every_interval(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()

    def close(self) -> None:
        """Write what is queued and stop the flusher."""
        self._stopping.set()
        self.flush()
        super().close()


def configure_logging(level: str) -> None:
    """Send our logs to stderr at ``level``; third-party libraries speak only at warning."""
    # Lines never show the caller's file, thread or process: records skip looking them up
    # (the logging HOWTO's "Optimization"): a quarter of what a line costs.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented switch
    handler = BurstBufferedHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("inference_club").setLevel(level.upper())
