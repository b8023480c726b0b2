"""Reconnect delays: exponential backoff with full jitter."""

import random


class Backoff:
    """Delays drawn uniformly from ``[0, min(cap, base * 2**attempt)]``.

    Full jitter spreads the agents of a whole club out after a gateway restart instead of
    letting them reconnect in synchronized waves.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self._base = base
        self._cap = cap
        self._attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret

    @property
    def cap(self) -> float:
        """The longest delay ever returned."""
        return self._cap

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the ceiling up to the cap."""
        ceiling = min(self._cap, self._base * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Start again from ``base``: the last connection was healthy."""
        self._attempt = 0
