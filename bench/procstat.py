"""CPU time, time waiting for a core, and memory of processes under test, read from psutil
when present, else /proc.

Time waiting for a core (ready to run, on a run queue) is what CPU time alone hides: a server
at 60 % of a core that also waits 30 % of the time for one is close to saturated, because the
machine's cores are all taken. It always comes from the scheduler's statistics in /proc
(``schedstat``), which psutil does not show.

Peak memory comes from the kernel's high-water mark (``VmHWM``), which can be reset per
measurement by writing ``5`` to ``/proc/PID/clear_refs``; a sampler backs it up where that fails.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import psutil  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:
    psutil = None

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def waiting_seconds(pid: int) -> float:
    """Time the threads of one process spent ready to run but waiting for a core, so far;
    0 where the kernel keeps no scheduler statistics. OSError once the process is gone."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread may end between listing and reading.
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Time on a core, time waiting on a run queue (both in ns), time slices run.
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident memory of one process now."""
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * _PAGE_SIZE


def peak_rss_bytes(pid: int) -> int | None:
    """The high-water mark of resident memory since start or the last reset."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak(pid: int) -> bool:
    """Restart the high-water mark at the current resident size; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def system_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling, since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (proxies may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found = [pid]
    for current in found:
        found.extend(children.get(current, ()))
    return found


@dataclass(frozen=True, slots=True)
class Usage:
    """What one process tree used during one measurement."""

    cpu_seconds: float
    cpu_percent: float
    rss_start: int
    rss_end: int
    peak_rss: int
    # Ready to run but waiting for a core, in percent of the span (summed over the tree).
    waiting_percent: float = 0.0


class _Tracked:
    def __init__(self, pid: int) -> None:
        self.pids = descendants(pid)
        self.cpu_start = _by_pid(cpu_seconds, self.pids)
        self.waiting_start = _by_pid(waiting_seconds, self.pids)
        self.rss_start = int(sum(_each(rss_bytes, self.pids)))
        self.peak_sampled = self.rss_start
        self.reset = all(reset_peak(pid) for pid in self.pids)

    def sample(self) -> None:
        self.peak_sampled = max(self.peak_sampled, int(sum(_each(rss_bytes, self.pids))))


def _by_pid(read: Callable[[int], float], pids: list[int]) -> dict[int, float]:
    values = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            values[pid] = read(pid)
    return values


def _growth(read: Callable[[int], float], start: dict[int, float]) -> float:
    """How much ``read`` grew since ``start`` over the processes still there: one that exited
    meanwhile takes its count with it, and must not take its earlier count off the others'."""
    now = _by_pid(read, list(start))
    return sum(value - start[pid] for pid, value in now.items())


def _each(read: Callable[[int], float], pids: list[int]) -> Iterator[float]:
    # A process of the tree may exit between listing and reading.
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            yield read(pid)


class Meter:
    """Measures named process trees over a span: ``async with Meter({...}) as meter: ...``."""

    def __init__(self, pids: dict[str, int], interval: float = 0.02) -> None:
        self._pids = pids
        self._interval = interval
        self._tracked: dict[str, _Tracked] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._started = 0.0
        self._busy_start = 0.0
        self._runner_start = 0.0
        self.usage: dict[str, Usage] = {}
        # CPU used meanwhile by processes neither metered nor this one, in % of one core:
        # anything else on the machine, which makes the step's numbers noisy.
        self.other_cpu_percent = 0.0

    async def __aenter__(self) -> "Meter":
        self._tracked = {name: _Tracked(pid) for name, pid in self._pids.items()}
        self._started = time.monotonic()
        self._busy_start = system_busy_seconds()
        self._runner_start = cpu_seconds(os.getpid())
        self._sampler = asyncio.create_task(self._sample_forever())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        elapsed = max(time.monotonic() - self._started, 1e-9)
        metered = cpu_seconds(os.getpid()) - self._runner_start
        for name, tracked in self._tracked.items():
            tracked.sample()
            cpu = _growth(cpu_seconds, tracked.cpu_start)
            waiting = _growth(waiting_seconds, tracked.waiting_start)
            peak = tracked.peak_sampled
            if tracked.reset:
                peak = max(peak, int(sum(_each(_peak_or_zero, tracked.pids))))
            self.usage[name] = Usage(
                cpu_seconds=cpu,
                cpu_percent=100 * cpu / elapsed,
                rss_start=tracked.rss_start,
                rss_end=int(sum(_each(rss_bytes, tracked.pids))),
                peak_rss=peak,
                waiting_percent=100 * waiting / elapsed,
            )
            metered += cpu
        other = system_busy_seconds() - self._busy_start - metered
        self.other_cpu_percent = max(0.0, 100 * other / elapsed)

    async def _sample_forever(self) -> None:
        while True:
            for tracked in self._tracked.values():
                tracked.sample()
            await asyncio.sleep(self._interval)


def _peak_or_zero(pid: int) -> int:
    return peak_rss_bytes(pid) or 0
