"""The sign-in throttle: per-name and per-address limits in a sliding window."""

from inference_club.gateway.web.throttle import LoginThrottle


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_blocked_after_its_limit_until_the_window_passes() -> None:
    """Five failures block the name for what is left of the minute, then it may try again."""
    clock = Clock()
    throttle = LoginThrottle(per_name=5, per_address=20, window=60, clock=clock)
    for _ in range(4):
        throttle.failed("Alice", "10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("alice", "10.0.0.1") is None

    throttle.failed("alice", "10.0.0.2")

    assert throttle.retry_after("ALICE", "10.0.0.3") == 56
    clock.now += 56
    assert throttle.retry_after("alice", "10.0.0.3") is None


def test_an_address_has_a_higher_limit_shared_by_all_names() -> None:
    """Failures from one address over many names block that address, not other addresses."""
    throttle = LoginThrottle(per_name=5, per_address=3, window=60, clock=Clock())
    for name in ("a", "b", "c"):
        throttle.failed(name, "10.0.0.9")

    assert throttle.retry_after("d", "10.0.0.9") is not None
    assert throttle.retry_after("d", "10.0.0.8") is None


def test_success_clears_the_names_failures_only() -> None:
    """Signing in forgets the name's failures but not the address's."""
    throttle = LoginThrottle(per_name=2, per_address=2, window=60, clock=Clock())
    throttle.failed("bob", "10.0.0.1")
    throttle.failed("bob", "10.0.0.1")
    assert throttle.retry_after("bob", None) is not None

    throttle.succeeded("bob")

    assert throttle.retry_after("bob", None) is None
    assert throttle.retry_after("carol", "10.0.0.1") is not None
