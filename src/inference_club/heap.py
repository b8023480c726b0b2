"""Keeping the garbage collector's full passes short and rare in long-running processes."""

import gc

# Full collections come after this many collections of the middle generation instead of
# Python's 10 (and only when the old generation grew by a quarter since the last one).
FULL_COLLECTION_EVERY = 1000


def settle_long_running_heap() -> None:
    """What a long-running process does once started: its startup objects leave the
    collector's reach, and full collections are spaced out."""
    freeze_startup_objects()
    space_out_full_collections()


def freeze_startup_objects() -> None:
    """Move everything alive after startup out of the collector's reach.

    Modules, classes and settings made while starting live as long as the process; without
    this every full collection walks them again (tens of milliseconds on a slow machine, a
    stall for every request in flight). Garbage is collected first so none of it is kept.
    """
    gc.collect()
    gc.freeze()


def space_out_full_collections() -> None:
    """Run full collections a hundred times less often than Python's default.

    With the startup objects frozen, the old generation is small, so by default a full pass
    came every few seconds under load, walking every request and stream in flight (40 to
    110 ms with 500 to 2,000 streams open on the 2-core bench machine, a stall for all of
    them) and finding almost nothing: requests leave no reference cycles behind. Young cycles
    are still collected as often as before; the few that live long wait longer.
    """
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
