"""Owner first: per-provider concurrency caps and a fair queue for requests that must wait.

Each provider takes at most ``max_concurrency`` requests per model and at most its guest cap
from members other than its owner, so the owner of a GPU is never crowded out by guests.
A request that finds every eligible provider busy waits in a queue served round robin between
members, the provider owner's own requests first, until a slot frees or the wait times out.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.errors import Overloaded
from inference_club.gateway.registry import Caller, Candidate


@dataclass(slots=True)
class Slot:
    """A place reserved on one provider for one request; released exactly once."""

    candidate: Candidate
    guest: bool
    released: bool = False


@dataclass(slots=True)
class _Waiter:
    caller: Caller
    model: str
    future: asyncio.Future[Slot] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Admission:
    """Reserves slots on providers, queueing fairly when none is free."""

    def __init__(
        self, candidates: Callable[[Caller, str], list[Candidate]], timeout: float
    ) -> None:
        # Asked again whenever a slot frees, so providers that came online meanwhile count too.
        self._candidates = candidates
        self._timeout = timeout
        # model id → user id → that user's waiting requests; dict order is the round-robin turn.
        self._queues: dict[str, dict[int, deque[_Waiter]]] = {}

    def waiting(self, model: str) -> int:
        """How many requests wait for ``model``."""
        return sum(len(q) for q in self._queues.get(model, {}).values())

    def try_reserve(self, candidates: list[Candidate], caller: Caller) -> Slot | None:
        """A slot on the first candidate with room for this caller, if any has room now."""
        for candidate in candidates:
            if _fits(candidate, caller):
                return _reserve(candidate, caller)
        return None

    async def reserve(
        self, candidates: list[Candidate], caller: Caller, model: str
    ) -> tuple[Slot, int]:
        """A slot now, or after waiting in the queue; 503 when the wait times out.

        Returns the slot and the queue position the request had on arrival (0: no wait).
        """
        slot = self.reserve_now(candidates, caller, model)
        if slot is not None:
            return slot, 0
        waiter = _Waiter(caller, model)
        queue = self._queues.setdefault(model, {}).setdefault(caller.user_id, deque())
        queue.append(waiter)
        position = self.waiting(model)
        taken = False
        try:
            async with asyncio.timeout(self._timeout):
                slot = await waiter.future
            taken = True
            return slot, position
        except TimeoutError:
            raise Overloaded(
                f"Every provider of model '{model}' is busy; waited {self._timeout:g} seconds "
                "in the queue.",
                headers={"Retry-After": "5"},
            ) from None
        finally:
            self._forget(waiter)
            if not taken and waiter.future.done() and not waiter.future.cancelled():
                # A slot handed over just as the wait was abandoned goes to the next in line.
                self.release(waiter.future.result())

    def reserve_now(self, candidates: list[Candidate], caller: Caller, model: str) -> Slot | None:
        """The slot ``reserve`` would take without waiting, or None when it would queue."""
        if not self.waiting(model):
            return self.try_reserve(candidates, caller)
        # Others wait already: taking a free slot only if they could not use it keeps order.
        return self._reserve_if_owner(candidates, caller)

    def _reserve_if_owner(self, candidates: list[Candidate], caller: Caller) -> Slot | None:
        for candidate in candidates:
            if candidate.connection.owner_id == caller.user_id and _fits(candidate, caller):
                return _reserve(candidate, caller)
        return None

    def release(self, slot: Slot) -> None:
        """Give the slot back and hand it to the next waiter that fits."""
        if slot.released:
            return
        slot.released = True
        connection = slot.candidate.connection
        model = slot.candidate.card.id
        connection.active[model] = connection.active.get(model, 1) - 1
        if slot.guest:
            connection.guest_active -= 1
        self.dispatch(model)

    def dispatch_all(self) -> None:
        """Re-check every queue: a provider connected or announced new models."""
        for model in list(self._queues):
            self.dispatch(model)

    def dispatch(self, model: str) -> None:
        """Hand free slots for ``model`` to waiters: owners first, then round robin by member."""
        queues = self._queues.get(model)
        while queues:
            handed = self._hand_one(model, queues, owners_only=True) or self._hand_one(
                model, queues, owners_only=False
            )
            if not handed:
                return

    def _hand_one(
        self, model: str, queues: dict[int, deque[_Waiter]], *, owners_only: bool
    ) -> bool:
        for user_id in list(queues):
            queue = queues[user_id]
            waiter = queue[0]
            candidates = self._candidates(waiter.caller, model)
            if owners_only:
                candidates = [c for c in candidates if c.connection.owner_id == user_id]
            slot = self.try_reserve(candidates, waiter.caller)
            if slot is None:
                continue
            queue.popleft()
            # This member's turn is used: move them to the back of the round.
            del queues[user_id]
            if queue:
                queues[user_id] = queue
            if not queues:
                self._queues.pop(model, None)
            waiter.future.set_result(slot)
            return True
        return False

    def _forget(self, waiter: _Waiter) -> None:
        queues = self._queues.get(waiter.model)
        if not queues:
            return
        queue = queues.get(waiter.caller.user_id)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
            if not queue:
                del queues[waiter.caller.user_id]
        if not queues:
            self._queues.pop(waiter.model, None)


def guest_cap(connection: ProviderConnection) -> int:
    """How many guests' requests a provider takes at once."""
    if connection.guest_concurrency is not None:
        return connection.guest_concurrency
    return max(1, connection.capacity // 2)


def _fits(candidate: Candidate, caller: Caller) -> bool:
    connection = candidate.connection
    if connection.closed:
        return False
    if connection.active.get(candidate.card.id, 0) >= candidate.card.max_concurrency:
        return False
    guest = connection.owner_id != caller.user_id
    return not guest or connection.guest_active < guest_cap(connection)


def _reserve(candidate: Candidate, caller: Caller) -> Slot:
    connection = candidate.connection
    model = candidate.card.id
    connection.active[model] = connection.active.get(model, 0) + 1
    guest = connection.owner_id != caller.user_id
    if guest:
        connection.guest_active += 1
    return Slot(candidate, guest)
