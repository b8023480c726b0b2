"""Provider presence: written in parts, and nothing lost when a write fails."""

from collections.abc import Sequence
from datetime import datetime

from inference_club.gateway.presence import PresenceWriter


class RecordingStore:
    """Stands for Store.mark_providers_seen; can fail the n-th call."""

    def __init__(self, fail_call: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_call = fail_call

    async def mark_seen(self, provider_ids: Sequence[int], _at: datetime) -> None:
        self.calls.append(list(provider_ids))
        if len(self.calls) == self.fail_call:
            raise OSError("database is locked")


async def test_thousands_of_providers_are_written_in_parts() -> None:
    """A flush of 1,200 providers is three statements of at most 500 ids, covering all."""
    store = RecordingStore()
    writer = PresenceWriter(store.mark_seen, list)
    for provider_id in range(1, 1201):
        writer.seen(provider_id)

    await writer.flush()

    assert [len(call) for call in store.calls] == [500, 500, 200]
    assert sorted(i for call in store.calls for i in call) == list(range(1, 1201))


async def test_a_failed_part_and_the_rest_are_written_on_the_next_flush() -> None:
    """Ids of the part that failed and of the parts after it are kept for the next flush."""
    store = RecordingStore(fail_call=2)
    writer = PresenceWriter(store.mark_seen, list)
    for provider_id in range(1, 1201):
        writer.seen(provider_id)

    await writer.flush()
    await writer.flush()

    assert [len(call) for call in store.calls] == [500, 500, 500, 200]
    assert sorted(store.calls[2] + store.calls[3]) == list(range(501, 1201))
