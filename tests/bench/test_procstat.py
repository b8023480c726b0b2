"""CPU time and memory of a process, read from /proc."""

import asyncio
import os
import subprocess
import sys
import time

from bench.procstat import Meter, cpu_seconds, peak_rss_bytes, rss_bytes, waiting_seconds


async def test_meter_sees_cpu_work_and_a_memory_peak():
    """Busy work shows as CPU time and a 64 MB allocation raises the peak, even once freed."""
    async with Meter({"self": os.getpid()}, interval=0.01) as meter:
        deadline = time.process_time() + 0.1
        while time.process_time() < deadline:
            pass
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block
    usage = meter.usage["self"]
    assert usage.cpu_seconds >= 0.08
    assert usage.peak_rss - usage.rss_start >= 60 * 1024 * 1024
    assert usage.rss_end < usage.peak_rss


def test_readers_agree_with_each_other():
    """RSS is positive and below the high-water mark; CPU time only grows."""
    pid = os.getpid()
    before = cpu_seconds(pid)
    assert 0 < rss_bytes(pid) <= (peak_rss_bytes(pid) or 0)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(pid) > before


def _busy_child(cpu: int, code: str = "while True: pass") -> subprocess.Popen[bytes]:
    """A Python process running ``code`` (by default, spinning until killed) on ``cpu``."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),  # noqa: PLW1509 - no threads yet
    )


def test_waiting_for_a_core_shows_when_a_core_is_shared():
    """Two spinning processes on one core each wait for it about half the time; alone on a
    core, a spinning process hardly waits."""
    cpu = min(os.sched_getaffinity(0))
    pid = os.getpid()
    before_waiting = waiting_seconds(pid)
    assert before_waiting >= 0
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    child = _busy_child(cpu)
    try:
        time.sleep(0.1)  # the child is spinning
        shared = waiting_seconds(pid)
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            pass
        shared = waiting_seconds(pid) - shared
    finally:
        child.kill()
        child.wait()
        os.sched_setaffinity(0, saved)
    alone = waiting_seconds(pid)
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        pass
    alone = waiting_seconds(pid) - alone
    assert shared >= 0.1, f"waited {shared:.3f} s of 0.5 s sharing a core"
    assert alone < shared / 2, f"waited {alone:.3f} s alone against {shared:.3f} s shared"


async def test_meter_reports_time_waiting_for_a_core():
    """The meter's waiting share covers the whole tree of a process kept off its core."""
    cpu = min(os.sched_getaffinity(0))
    first, second = _busy_child(cpu), _busy_child(cpu)
    try:
        await asyncio.sleep(0.1)  # both are spinning
        async with Meter({"spinners": first.pid}, interval=0.05) as meter:
            await asyncio.sleep(0.5)
    finally:
        for child in (first, second):
            child.kill()
            child.wait()
    usage = meter.usage["spinners"]
    # Two spinners share one core: each runs about half the time and waits the other half.
    assert usage.waiting_percent >= 20, usage
    assert usage.cpu_percent + usage.waiting_percent >= 70, usage


async def test_a_process_that_exits_takes_only_its_own_waiting_time_with_it():
    """A tree's waiting share counts the processes still there; one that exited during the
    span does not take its earlier waiting off theirs."""
    cpu = min(os.sched_getaffinity(0))
    # It spins beside a spinning child of its own for a second, then alone.
    root = _busy_child(
        cpu,
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
        "deadline = time.monotonic() + 1.0\n"
        "while time.monotonic() < deadline: pass\n"
        "child.kill(); child.wait()\n"
        "while True: pass\n",
    )
    try:
        await asyncio.sleep(0.6)  # the root and its child share the core, each waiting
        async with Meter({"tree": root.pid}, interval=0.05) as meter:
            await asyncio.sleep(0.8)  # the child is killed half-way
    finally:
        root.kill()
        root.wait()
    # The root waited about half of the span's first half. Taking the child's earlier
    # waiting (more than half a second) off the root's would leave nothing, or less.
    assert meter.usage["tree"].waiting_percent >= 10, meter.usage["tree"]
