"""The event loop every long-running process uses: uvloop where it exists, else asyncio's."""

import asyncio
import sys
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (not on Windows), else asyncio's own loop."""
    if sys.platform != "win32":
        try:
            import uvloop  # noqa: PLC0415 - optional: everything runs without it, only slower
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
