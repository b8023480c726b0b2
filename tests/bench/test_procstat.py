"""CPU time and memory of a process, read from /proc."""

import os
import time

from bench.procstat import Meter, cpu_seconds, peak_rss_bytes, rss_bytes


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
