"""Answers kept for one generation of the data, bounded."""

from inference_club.store.kept import MISSING, KeptAnswers


def test_an_answer_lasts_until_the_generation_moves_on() -> None:
    """Kept in generation 1, found in 1, gone in 2; None is an answer like any other."""
    kept = KeptAnswers()
    kept.put("key", None, 1)

    assert kept.get("key", 1) is None
    assert kept.get("other", 1) is MISSING
    assert kept.get("key", 2) is MISSING
    assert kept.get("key", 1) is MISSING  # dropped for good, not hidden


def test_past_its_size_it_starts_over() -> None:
    """Unknown keys cannot grow it without bound."""
    kept = KeptAnswers(max_entries=2)
    kept.put("a", 1, 0)
    kept.put("b", 2, 0)
    kept.put("c", 3, 0)

    assert kept.get("a", 0) is MISSING
    assert kept.get("c", 0) == 3
