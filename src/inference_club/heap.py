"""Keeping the garbage collector's full passes short in long-running processes."""

import gc


def freeze_startup_objects() -> None:
    """Move everything alive after startup out of the collector's reach.

    Modules, classes and settings made while starting live as long as the process; without
    this every full collection walks them again (tens of milliseconds on a slow machine, a
    stall for every request in flight). Garbage is collected first so none of it is kept.
    """
    gc.collect()
    gc.freeze()
