"""Many light simulated agents speaking the tunnel protocol, run as their own process.

Each one connects with its own provider token, says hello with its models, waits for the
welcome and then only answers pings. Output lines: ``progress ...``, one ``ready ...`` when every
agent has connected or failed, ``error ...`` samples, and ``closed ...`` at the end; the process
holds its agents until its standard input closes.
"""

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from inference_club.protocol import (
    PROTOCOL_VERSION,
    Hello,
    ModelCard,
    Ping,
    Pong,
    Welcome,
    decode,
    encode,
)

_MAX_ERROR_LINES = 5


@dataclass
class _Tally:
    connected: int = 0
    failed: int = 0
    dropped: int = 0
    errors_shown: int = 0


def model_cards(agent: int, per_agent: int) -> tuple[ModelCard, ...]:
    """The models agent number ``agent`` announces: ``m-<agent>`` or ``m-<agent>-<j>``."""
    if per_agent == 1:
        return (ModelCard(f"m-{agent}"),)
    return tuple(ModelCard(f"m-{agent}-{j}") for j in range(per_agent))


async def _handshake(socket: ClientConnection, cards: tuple[ModelCard, ...]) -> None:
    await socket.send(encode(Hello(PROTOCOL_VERSION, "bench", cards)))
    answer = await asyncio.wait_for(socket.recv(decode=False), 60)
    frame = decode(answer if isinstance(answer, bytes) else answer.encode())
    if not isinstance(frame, Welcome):
        msg = f"expected welcome, got {type(frame).__name__}"
        raise TypeError(msg)


async def _run_agent(
    url: str, token: str, cards: tuple[ModelCard, ...], gate: asyncio.Semaphore, tally: _Tally
) -> None:
    try:
        async with gate:
            socket = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                compression=None,
                ping_interval=None,
                proxy=None,
                max_size=None,
                open_timeout=60,
            )
            await _handshake(socket, cards)
        tally.connected += 1
    except Exception as exc:
        tally.failed += 1
        if tally.errors_shown < _MAX_ERROR_LINES:
            tally.errors_shown += 1
            print(f"error {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        return
    try:
        async for message in socket:
            frame = decode(message if isinstance(message, bytes) else message.encode())
            if isinstance(frame, Ping):
                await socket.send(encode(Pong(frame.payload)))
    except Exception:
        pass
    tally.dropped += 1


async def simulate(url: str, tokens: list[str], per_agent: int, concurrency: int) -> None:
    """Connect one agent per token, report, hold until stdin closes, then close them all."""
    tally = _Tally()
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(_run_agent(url, token, model_cards(index, per_agent), gate, tally))
        for index, token in enumerate(tokens)
    ]
    step = max(1, len(tokens) // 5)
    shown = 0
    while tally.connected + tally.failed < len(tokens):
        await asyncio.sleep(0.1)
        if tally.connected + tally.failed >= shown + step:
            shown = tally.connected + tally.failed
            print(f"progress connected={tally.connected} failed={tally.failed}", flush=True)
    seconds = time.perf_counter() - started
    print(
        f"ready connected={tally.connected} failed={tally.failed} seconds={seconds:.2f}",
        flush=True,
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"closed dropped={tally.dropped}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; tokens come from a file so they never show in a process list."""
    parser = argparse.ArgumentParser(prog="python -m bench.tunnel_sim", description=__doc__)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/api/tunnel")
    parser.add_argument("--tokens", type=Path, required=True, help="file, one token a line")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--models-per-agent", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes at once")
    args = parser.parse_args(argv)
    tokens = [line for line in args.tokens.read_text().splitlines() if line][: args.count]
    if len(tokens) < args.count:
        print(f"error only {len(tokens)} tokens for {args.count} agents", flush=True)
    coroutine = simulate(args.url, tokens, args.models_per_agent, args.concurrency)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
