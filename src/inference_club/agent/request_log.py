"""The agent's line per request, handed to logging in batches.

Made the moment its request ends, a line costs several times what the same line costs among
others: between two requests the processor ran the gateway, the model server and the client,
and logging's code and data have left its caches. At 1,000 requests a second that one line
took about a sixth of the agent's time per request; made in batches, a few percent.

A line after a quiet spell is handed over on the loop's next turn; the lines that follow
within ``interval`` go together when it ends or when ``batch`` of them are queued, whichever
comes first, and the handlers are flushed then, so a line is never written much later than
that. A batch is logged in short slices (``inference_club.slices``) so requests go on between.
Each record carries the moment its request ended, not the moment it was made.
"""

import asyncio
import logging
import time
from collections.abc import Mapping

from inference_club.slices import SLICE_SECONDS

# Request lines keep the name they have always been logged under.
logger = logging.getLogger("inference_club.agent.relay")

_MESSAGE = "request"


class RequestLog:
    """Collects the request lines of one agent and logs them in batches."""

    def __init__(self, level: int = logging.INFO, interval: float = 0.25, batch: int = 48) -> None:
        self._level = level
        self._interval = interval
        self._batch = batch
        self._pending: list[tuple[float, Mapping[str, object]]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._flush_soon = False
        self._last_flush = -interval
        self._template: logging.LogRecord | None = None

    def enabled(self) -> bool:
        """Whether request lines are logged at all (the logger's level admits them)."""
        return logger.isEnabledFor(self._level)

    def add(self, fields: Mapping[str, object]) -> None:
        """Queue one request's line; it is logged within ``interval`` seconds."""
        self._pending.append((time.time(), fields))
        if self._flush_soon:
            return
        if len(self._pending) >= self._batch:
            self._schedule_soon()
        elif self._flush_handle is None:
            wait = self._last_flush + self._interval - time.monotonic()
            if wait <= 0:
                self._schedule_soon()
            else:
                loop = asyncio.get_running_loop()
                self._flush_handle = loop.call_later(wait, self._flush_slice)

    def flush(self) -> None:
        """Log every queued line now."""
        self._cancel()
        self._last_flush = time.monotonic()
        pending, self._pending = self._pending, []
        if pending:
            handlers = _reached_handlers()
            for ended, fields in pending:
                self._log(ended, fields, handlers)
            for handler in handlers:
                handler.flush()

    def _schedule_soon(self) -> None:
        self._cancel()
        self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_slice)
        self._flush_soon = True

    def _cancel(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._flush_soon = False

    def _flush_slice(self) -> None:
        """Log queued lines for at most one slice; the rest follow on the loop's next turns."""
        self._flush_handle = None
        self._flush_soon = False
        self._last_flush = time.monotonic()
        deadline = time.perf_counter() + SLICE_SECONDS
        pending = self._pending
        handlers = _reached_handlers()
        done = 0
        while done < len(pending):
            ended, fields = pending[done]
            self._log(ended, fields, handlers)
            done += 1
            if time.perf_counter() >= deadline:
                break
        del pending[:done]
        for handler in handlers:
            handler.flush()
        if pending:
            self._schedule_soon()

    def _log(
        self, ended: float, fields: Mapping[str, object], handlers: list[logging.Handler]
    ) -> None:
        template = self._template
        if template is None:
            template = self._template = _template_record(self._level)
        # A copy of the template's attributes, not a new record: every request line has the
        # same logger, level, message and (absent) caller, which LogRecord's constructor
        # would work out again each time. A dict's copy is one step, where filling the new
        # record's own dict took a step per attribute.
        record = template.__class__.__new__(template.__class__)
        attributes = template.__dict__.copy()
        attributes.update(fields)
        # Dated when its request ended, not when the template was made.
        attributes["relativeCreated"] -= (template.created - ended) * 1000
        attributes["created"] = ended
        attributes["msecs"] = int((ended - int(ended)) * 1000) + 0.0
        record.__dict__ = attributes
        if logger.disabled or logger.filters or not handlers:
            logger.handle(record)  # logging's own way: filters, or its last resort
            return
        # ``logger.handle`` for a logger with no filters, the handlers found once per batch.
        level = record.levelno
        for handler in handlers:
            if level >= handler.level:
                handler.handle(record)


def _template_record(level: int) -> logging.LogRecord:
    """A request line's record without its time and fields, made as ``logger.log`` would
    (through the record factory in use)."""
    return logger.makeRecord(
        logger.name,
        level,
        "(unknown file)",
        0,
        _MESSAGE,
        (),
        None,
        func="(unknown function)",
    )


def _reached_handlers() -> list[logging.Handler]:
    """Every handler a request line reaches, in the order ``Logger.callHandlers`` calls them."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    return handlers
