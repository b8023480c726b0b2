"""Settling between steps: a path still busy with a backlog is restarted, not left to spill."""

import sys
from pathlib import Path

from bench.context import Context
from bench.paths import PathUnderTest
from bench.plan import QUICK
from bench.services import start_service

from bench import context

_SPIN = "while True: pass"
_IDLE = "import time; time.sleep(60)"


async def _process(name: str, code: str, log_dir: Path):
    return await start_service(name, [sys.executable, "-c", code], log_dir)


async def test_a_path_still_busy_after_the_wait_is_restarted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(context, "_SETTLE_TIMEOUT", 0.75)
    mock = await _process("mock", _IDLE, tmp_path)
    proxy = PathUnderTest("proxy", services=[await _process("proxy", _SPIN, tmp_path)])
    restarts: list[str] = []

    async def restart() -> None:
        restarts.append("proxy")
        await proxy.stop()
        proxy.services.append(await _process("proxy", _IDLE, tmp_path))

    proxy.restart = restart
    direct = PathUnderTest("direct")
    ctx = Context(QUICK, mock, [direct, proxy], None, tmp_path, tmp_path)
    try:
        await ctx.settle("a step")

        assert restarts == ["proxy"]
        assert ctx.notes == [
            "proxy was still busy 30 s after a step; it was restarted before the next step"
        ]
    finally:
        await proxy.stop()
        await mock.stop()


async def test_a_busy_path_that_cannot_restart_is_only_noted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(context, "_SETTLE_TIMEOUT", 0.75)
    mock = await _process("mock", _IDLE, tmp_path)
    gateway = PathUnderTest("gateway", services=[await _process("gateway", _SPIN, tmp_path)])
    ctx = Context(QUICK, mock, [gateway], None, tmp_path, tmp_path)
    try:
        await ctx.settle("a step")

        assert ctx.notes == [
            "processes under test were still busy 30 s after a step; the next step shared the CPU"
        ]
    finally:
        await gateway.stop()
        await mock.stop()
