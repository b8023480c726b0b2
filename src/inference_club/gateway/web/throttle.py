"""Sign-in throttling: too many recent failures for one name, or from one address → 429.

A name gets few tries; an address gets more, since many members may share one (a household,
or every client when the reverse proxy's forwarded address is not trusted). Counted in this
process's memory: behind several gateway nodes each counts on its own, which still bounds
guessing to a small multiple of the limits.
"""

import time
from collections import deque
from collections.abc import Callable

FAILURES_PER_NAME = 5
FAILURES_PER_ADDRESS = 20
WINDOW_SECONDS = 60.0
# Bounds memory under a flood of distinct names or addresses.
_MAX_TRACKED = 100_000


class LoginThrottle:
    """Recent failures per name and per client address, in a sliding window."""

    def __init__(
        self,
        per_name: int = FAILURES_PER_NAME,
        per_address: int = FAILURES_PER_ADDRESS,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"name": per_name, "address": per_address}
        self.window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, name: str, address: str | None) -> int | None:
        """Seconds to wait when the name or the address is over its limit, else ``None``."""
        now = self._clock()
        wait = 0.0
        for key in _keys(name, address):
            failures = self._recent(key, now)
            if len(failures) >= self._limits[key[0]]:
                wait = max(wait, failures[0] + self.window - now)
        return max(1, int(wait + 0.999)) if wait > 0 else None

    def failed(self, name: str, address: str | None) -> None:
        """Count one failed attempt."""
        now = self._clock()
        for key in _keys(name, address):
            if key not in self._failures and len(self._failures) >= _MAX_TRACKED:
                self._prune(now)
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, name: str) -> None:
        """Forget the name's failures once its owner proved who they are."""
        self._failures.pop(("name", name.lower()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= _MAX_TRACKED:
            oldest = min(self._failures, key=lambda key: self._failures[key][-1])
            del self._failures[oldest]


def _keys(name: str, address: str | None) -> list[tuple[str, str]]:
    keys = [("name", name.lower())]
    if address:
        keys.append(("address", address))
    return keys
