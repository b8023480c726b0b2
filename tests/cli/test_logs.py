"""The key=value log line: quoting, escaping and the timestamp."""

import io
import logging
import time

from inference_club.cli.logs import BurstBufferedHandler, KeyValueFormatter


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("inference_club.test").makeRecord(
        "inference_club.test", logging.INFO, __file__, 1, "a message", (), None, extra=extra
    )
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_values_are_quoted_only_when_they_must_be() -> None:
    """Plain values stay bare; spaces, quotes, '=' and newlines are quoted and escaped."""
    line = KeyValueFormatter().format(
        _record(0.0, count=3, flag=True, word="ok", text='say "hi"=\nbye', empty="")
    )
    assert 'msg="a message"' in line
    assert " count=3 flag=True word=ok " in line
    assert 'text="say \\"hi\\"=\\nbye"' in line
    assert line.endswith(' empty=""')


def test_timestamps_follow_each_record_across_seconds() -> None:
    """The cached date part changes with the record's second; milliseconds are the record's."""
    formatter = KeyValueFormatter()
    first = formatter.format(_record(1_700_000_000.25))
    second = formatter.format(_record(1_700_000_001.5))
    assert first.startswith("ts=2023-11-14T22:13:20.250Z ")
    assert second.startswith("ts=2023-11-14T22:13:21.500Z ")
    assert formatter.format(_record(1_700_000_001.0071)).startswith("ts=2023-11-14T22:13:21.007Z ")


def _handler(stream: io.StringIO, interval: float) -> BurstBufferedHandler:
    handler = BurstBufferedHandler(stream, interval=interval)
    handler.setFormatter(KeyValueFormatter())
    return handler


def test_a_line_after_a_quiet_spell_is_written_at_once() -> None:
    """Rare lines never wait: the first line (and one after a pause) is written immediately."""
    stream = io.StringIO()
    handler = _handler(stream, interval=0.05)
    try:
        handler.handle(_record(time.time(), n=1))
        assert "n=1" in stream.getvalue()
        time.sleep(0.1)
        handler.handle(_record(time.time(), n=2))
        assert "n=2" in stream.getvalue()
    finally:
        handler.close()


def test_a_burst_is_written_in_batches_within_the_interval() -> None:
    """Lines right after a write wait for the flusher, but never past the interval."""
    stream = io.StringIO()
    handler = _handler(stream, interval=0.2)
    try:
        for n in range(50):
            handler.handle(_record(time.time(), n=n))
        assert stream.getvalue().count("\n") == 1  # the first, written at once
        deadline = time.monotonic() + 2
        while stream.getvalue().count("\n") < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue().count("\n") == 50
    finally:
        handler.close()


def test_warnings_and_closing_write_everything_queued() -> None:
    """A warning flushes what waited before it; closing flushes the rest."""
    stream = io.StringIO()
    handler = _handler(stream, interval=60)
    handler.handle(_record(time.time(), n=1))
    handler.handle(_record(time.time(), n=2))
    assert "n=2" not in stream.getvalue()
    warning = _record(time.time(), n=3)
    warning.levelno, warning.levelname = logging.WARNING, "WARNING"
    handler.handle(warning)
    assert "n=2" in stream.getvalue()
    assert "n=3" in stream.getvalue()
    handler.handle(_record(time.time(), n=4))
    handler.close()
    assert "n=4" in stream.getvalue()


def test_extra_fields_of_any_record_follow_the_message_in_order() -> None:
    """Records made from a dict (as socket handlers do) list their extra fields too, in order,
    and a value seen before is written the same way again."""
    formatter = KeyValueFormatter()
    record = logging.makeLogRecord(
        {"name": "inference_club.test", "msg": "hi", "created": 0.0, "msecs": 0.0, "b": "x y"}
    )
    record.a = 1
    first = formatter.format(record)
    again = formatter.format(record)
    assert first.endswith('msg=hi b="x y" a=1')
    assert again == first


def test_private_and_reserved_names_stay_out_of_every_line() -> None:
    """A field whose name starts with '_', or is a record's own, is never written, the first
    time its name is seen or after; the fields around it are."""
    formatter = KeyValueFormatter()
    lines = []
    for _ in range(2):
        record = logging.makeLogRecord(
            {"name": "inference_club.test", "msg": "hi", "created": 0.0, "msecs": 0.0}
        )
        record.__dict__.update({"shown": 1, "_hidden": 2, "message": "no", "after": "x"})
        lines.append(formatter.format(record))
    assert lines[0] == lines[1]
    assert lines[0].endswith("msg=hi shown=1 after=x")


def test_each_line_names_its_own_level_logger_and_message() -> None:
    """Lines of the same message at other levels, from other loggers, or with arguments
    each show their own; a repeated line shows the same text again."""
    formatter = KeyValueFormatter()

    def line(name: str, level: int, message: str, args: tuple[object, ...] = ()) -> str:
        record = logging.getLogger(name).makeRecord(name, level, __file__, 1, message, args, None)
        return formatter.format(record).split(" ", 1)[1]

    assert (
        line("inference_club.a", logging.INFO, "ready")
        == "level=info logger=inference_club.a msg=ready"
    )
    assert line("inference_club.a", logging.WARNING, "ready") == (
        "level=warning logger=inference_club.a msg=ready"
    )
    assert (
        line("inference_club.b", logging.INFO, "ready")
        == "level=info logger=inference_club.b msg=ready"
    )
    assert line("inference_club.a", logging.INFO, "%d ready", (3,)) == (
        'level=info logger=inference_club.a msg="3 ready"'
    )
    assert line("inference_club.a", logging.INFO, "%d ready", (4,)) == (
        'level=info logger=inference_club.a msg="4 ready"'
    )
    assert (
        line("inference_club.a", logging.INFO, "ready")
        == "level=info logger=inference_club.a msg=ready"
    )
