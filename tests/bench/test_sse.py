"""Stamping SSE events as they arrive and the gaps between them."""

import pytest
from bench.sse import EventClock, gaps


def test_each_event_is_stamped_when_its_blank_line_arrives():
    """An event counts when its terminating blank line arrives, even split across reads."""
    clock = EventClock()
    clock.feed(b'data: {"a":1}\n\ndata: {"b"', 1.0)
    clock.feed(b":2}\n", 2.0)
    clock.feed(b"\n", 3.0)
    assert clock.times == [1.0, 3.0]


def test_done_marker_is_noted_but_not_a_chunk():
    """``data: [DONE]`` ends the stream but is not stamped as a chunk."""
    clock = EventClock()
    clock.feed(b"data: {}\n\ndata: [DONE]\n\n", 5.0)
    assert clock.times == [5.0]
    assert clock.done


def test_crlf_line_endings_and_multi_line_events():
    """CRLF endings and events of several lines (event:, id:, data:) count once each."""
    clock = EventClock()
    clock.feed(b"event: x\r\ndata: 1\r\n\r\nid: 2\r\ndata: 2\r\n\r\n", 1.5)
    assert clock.times == [1.5, 1.5]
    assert not clock.done


def test_blank_lines_without_an_event_are_not_chunks():
    """Keep-alive blank lines between events do not count as chunks."""
    clock = EventClock()
    clock.feed(b"\n\n\ndata: 1\n\n\n\n", 1.0)
    assert clock.times == [1.0]


def test_gaps_between_consecutive_events():
    """The gaps are the differences of consecutive times; one event has no gap."""
    assert gaps([1.0, 1.5, 1.75, 3.0]) == pytest.approx([0.5, 0.25, 1.25])
    assert gaps([2.0]) == []
    assert gaps([]) == []
