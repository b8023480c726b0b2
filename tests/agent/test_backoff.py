"""Reconnect delays: exponential growth, full jitter, cap and reset."""

import random

from inference_club.agent.backoff import Backoff


def test_delays_stay_under_a_doubling_ceiling_up_to_the_cap():
    """The n-th delay lies in [0, min(cap, base * 2**n)]."""
    backoff = Backoff(0.5, 30.0, random.Random(1))
    for attempt in range(12):
        delay = backoff.next_delay()
        assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)


def test_delays_are_jittered_and_reach_the_cap_region():
    """Many agents do not retry in lockstep, and late delays use the whole capped range."""
    delays = []
    for seed in range(50):
        backoff = Backoff(0.5, 30.0, random.Random(seed))
        for _ in range(10):
            delay = backoff.next_delay()
        delays.append(delay)
    assert len(set(delays)) == len(delays)
    assert max(delays) > 20.0
    assert max(delays) <= 30.0


def test_reset_starts_again_from_the_base():
    """After a healthy connection the next delay is at most the base again."""
    backoff = Backoff(0.5, 30.0, random.Random(2))
    for _ in range(8):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.5
