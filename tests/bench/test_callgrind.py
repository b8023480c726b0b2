"""Instructions counted by callgrind over a span of work, and the cost table of the report."""

import asyncio
import sys
from pathlib import Path

import pytest
from bench.report import RunInfo, markdown
from bench.results import Measurement
from bench.scenarios_cost import INSTRUCTIONS, STEP

from bench import callgrind

# Sums ``range(n)`` for every line ``n`` it reads, and answers each with a line.
_LOOPER = """
import sys
for line in sys.stdin:
    sum(range(int(line)))
    print("done", flush=True)
"""

_ANNOTATED = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
252,310,859 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
39,376,198 (15.61%)  Python/ceval.c:_PyEval_EvalFrameDefault
"""


def test_program_total_is_read_from_the_annotation():
    """The totals line gives the count, thousands separators and all."""
    assert callgrind.program_total(_ANNOTATED) == 252_310_859
    with pytest.raises(callgrind.CallgrindError, match="no program totals"):
        callgrind.program_total(_ANNOTATED.replace("PROGRAM TOTALS", "per file"))


@pytest.mark.skipif(bool(callgrind.missing_tools()), reason="valgrind is not installed")
@pytest.mark.timeout(300)
async def test_only_the_counted_span_is_counted(tmp_path: Path):
    """Work done before counting starts is not counted, and ten times the work in the span
    counts about ten times the instructions."""
    argv = [*callgrind.launcher(tmp_path)("looper"), sys.executable, "-c", _LOOPER]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def loop(iterations: int) -> None:
        stdin.write(f"{iterations}\n".encode())
        await stdin.drain()
        assert await asyncio.wait_for(stdout.readline(), 120) == b"done\n"

    try:
        await loop(3_000_000)  # before any count: must not show in the first one
        pids = {"looper": process.pid}
        _, small = await callgrind.count_instructions(pids, tmp_path, lambda: loop(30_000))
        _, large = await callgrind.count_instructions(pids, tmp_path, lambda: loop(300_000))
    finally:
        stdin.close()
        await asyncio.wait_for(process.wait(), 120)
    assert 0 < small["looper"] < large["looper"]
    assert 5 < large["looper"] / small["looper"] < 15


def test_the_report_sets_each_path_against_the_bare_relay():
    """Instructions per request by process, and each total as a multiple of the relay's."""
    gateway = Measurement(
        "cost",
        STEP,
        300,
        "gateway",
        extra={
            f"gateway{INSTRUCTIONS}": 900_000.0,
            f"agent{INSTRUCTIONS}": 500_000.0,
            f"total{INSTRUCTIONS}": 1_400_000.0,
        },
    )
    relay = Measurement(
        "cost",
        STEP,
        300,
        "bare-relay",
        extra={
            f"front{INSTRUCTIONS}": 50_000.0,
            f"back{INSTRUCTIONS}": 20_000.0,
            f"total{INSTRUCTIONS}": 70_000.0,
        },
    )
    info = RunInfo("now", "quick", 2, "3.11", {"direct": "ready"}, ())
    text = markdown(info, [gateway, relay], [])
    assert "## Instructions per request (callgrind, user space only)" in text
    gateway_row = "| gateway | 900,000 | 500,000 | n/a | n/a | 1,400,000 | 20.0 times |"
    relay_row = "| bare-relay | n/a | n/a | 50,000 | 20,000 | 70,000 | 1.0 times |"
    assert f"| non-streamed chat {gateway_row}" in text
    assert f"| non-streamed chat {relay_row}" in text
