"""The event loop every long-running process uses (uvloop where it exists, else asyncio's), and
the interpreter setting that keeps helper threads from holding it up."""

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


# How long a thread may keep the GIL while another waits for it (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL = 0.0005


def shorten_gil_waits() -> None:
    """Let the event loop take the GIL back within half a millisecond instead of five.

    The loop shares its process with helper threads (the usage writer, log flushing, aiosqlite).
    While the loop waits in poll, a helper may take the GIL; when the loop's next events come
    in, it waits until the helper lets go, and a helper running Python code lets go only when
    asked, after the switch interval. With CPython's 5 ms that wait was a visible share of the
    slowest requests.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
