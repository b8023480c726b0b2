"""Instructions a process executes over a span of work, counted by valgrind's callgrind.

Timings on a shared two-core machine move by a tenth from one run to the next; the number
of instructions a process executes for the same requests does not (it leaves out the
kernel's work, which timings include). A process started through ``launcher`` runs under
callgrind with counting off, so it starts and warms up at a fraction of callgrind's cost;
``count_instructions`` turns counting on for every process of a path, runs the work, turns
it off and reads what each counted.
"""

import re
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from bench.services import run_command

T = TypeVar("T")

_TOOLS = ("valgrind", "callgrind_control", "callgrind_annotate")
_TOTALS = re.compile(r"^\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", re.MULTILINE)
_TIMEOUT = 60.0


class CallgrindError(Exception):
    """callgrind could not count for a process; the message says why."""


def missing_tools() -> list[str]:
    """The valgrind commands this module needs that are not installed."""
    return [tool for tool in _TOOLS if shutil.which(tool) is None]


def launcher(out_dir: Path) -> Callable[[str], Sequence[str]]:
    """The command line prefix that starts a process named ``name`` under callgrind, not
    counting, with its counts written under ``out_dir``."""

    def prefix(name: str) -> Sequence[str]:
        out = out_dir / f"{name}.%p.out"
        return ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")

    return prefix


async def count_instructions(
    pids: Mapping[str, int], out_dir: Path, work: Callable[[], Awaitable[T]]
) -> tuple[T, dict[str, int]]:
    """Run ``work`` with counting on in each process of ``pids`` (started through
    ``launcher(out_dir)``); its result and the instructions each process executed meanwhile.
    Counting is off again afterwards, whatever ``work`` did."""
    for pid in pids.values():
        await _control("--instr=on", pid)
    try:
        result = await work()
    finally:
        for pid in pids.values():
            await _control("--instr=off", pid)
    counts = {}
    for name, pid in pids.items():
        before = _dumps(out_dir, name, pid)
        await _control("--dump", pid)
        dumps = _dumps(out_dir, name, pid) - before
        if len(dumps) != 1:
            msg = f"callgrind wrote {len(dumps)} new counts for {name} (pid {pid}), not one"
            raise CallgrindError(msg)
        counts[name] = program_total(await _annotate(dumps.pop()))
    return result, counts


def _dumps(out_dir: Path, name: str, pid: int) -> set[Path]:
    """The counts callgrind dumped so far for one process (``<name>.<pid>.out.<n>``)."""
    return set(out_dir.glob(f"{name}.{pid}.out.*"))


def program_total(annotated: str) -> int:
    """The instructions counted in all, from ``callgrind_annotate``'s output."""
    match = _TOTALS.search(annotated)
    if match is None:
        msg = "callgrind_annotate printed no program totals"
        raise CallgrindError(msg)
    return int(match.group(1).replace(",", ""))


async def _control(option: str, pid: int) -> None:
    code, _out, err = await run_command(["callgrind_control", option, str(pid)], timeout=_TIMEOUT)
    if code != 0:
        msg = f"callgrind_control {option} {pid} failed (exit {code}): {err.strip()[-300:]}"
        raise CallgrindError(msg)


async def _annotate(dump: Path) -> str:
    argv = ["callgrind_annotate", "--threshold=100", str(dump)]
    code, out, err = await run_command(argv, timeout=_TIMEOUT)
    if code != 0:
        msg = f"callgrind_annotate {dump.name} failed (exit {code}): {err.strip()[-300:]}"
        raise CallgrindError(msg)
    return out
