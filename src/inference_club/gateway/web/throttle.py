"""Sign-in throttling: too many failures for one name or from one address in a minute → 429.

Counted in this process's memory. Behind several gateway nodes each node counts on its own,
which still bounds guessing to a small multiple of the limit.
"""

import time
from collections import deque
from collections.abc import Callable, Iterable

DEFAULT_MAX_FAILURES = 5
DEFAULT_WINDOW = 60.0
# Bounds memory under a flood of distinct names or addresses.
_MAX_TRACKED = 100_000


class LoginThrottle:
    """Recent failures per key (``user:NAME``, ``addr:IP``) in a sliding window."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds to wait when any key is over the limit, else ``None``."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self.max_failures:
                wait = max(wait, failures[0] + self.window - now)
        return max(1, int(wait + 0.999)) if wait > 0 else None

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failure against every key."""
        now = self._clock()
        for key in keys:
            if key not in self._failures and len(self._failures) >= _MAX_TRACKED:
                self._forget_oldest()
            self._failures.setdefault(key, deque()).append(now)

    def forget(self, key: str) -> None:
        """Clear a key's failures (a name after its owner signed in)."""
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def _forget_oldest(self) -> None:
        oldest = min(self._failures, key=lambda key: self._failures[key][-1])
        del self._failures[oldest]


def throttle_keys(user_name: str, address: str | None) -> list[str]:
    """The keys one sign-in attempt counts against."""
    keys = [f"user:{user_name.lower()}"]
    if address:
        keys.append(f"addr:{address}")
    return keys
