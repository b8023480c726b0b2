"""Answers kept for one generation of the data, and dropped when the data moves on.

A generation is whatever says the database changed: SQLite's ``PRAGMA data_version``, or the
count of PostgreSQL change notices. Lookups on the request path (the API-key check) read it,
and only go to the database when it moved since the answer was kept.
"""

# What ``KeptAnswers.get`` returns when it holds no answer (None is a valid answer).
MISSING = object()
# Answers kept at most; past it the store starts over (unknown keys must not grow it).
MAX_KEPT = 4096


class KeptAnswers:
    """A bounded dict of answers, valid for one generation at a time."""

    def __init__(self, max_entries: int = MAX_KEPT) -> None:
        self._max_entries = max_entries
        self._answers: dict[object, object] = {}
        self._generation: object = None

    def get(self, key: object, generation: object) -> object:
        """The answer kept for ``key`` in ``generation``, or ``MISSING``."""
        self._move_to(generation)
        return self._answers.get(key, MISSING)

    def put(self, key: object, answer: object, generation: object) -> None:
        """Keep ``answer``, read in ``generation``."""
        self._move_to(generation)
        if len(self._answers) >= self._max_entries:
            self._answers.clear()
        self._answers[key] = answer

    def clear(self) -> None:
        """Forget every answer."""
        self._answers.clear()
        self._generation = None

    def _move_to(self, generation: object) -> None:
        if generation != self._generation:
            self._answers.clear()
            self._generation = generation
