"""The key=value log line: quoting, escaping and the timestamp."""

import logging

from inference_club.cli.logs import KeyValueFormatter


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
