"""A minimal agent speaking the tunnel protocol, for tests that only need models announced."""

import asyncio
import threading

import websockets
from websockets.asyncio.client import connect

from inference_club.protocol import PROTOCOL_VERSION, Hello, ModelCard, Ping, Pong, decode, encode


class FakeAgent:
    """Connects, announces ``cards`` and answers heartbeats in a background thread."""

    def __init__(self, gateway_port: int, token: str, cards: tuple[ModelCard, ...]) -> None:
        self._url = f"ws://127.0.0.1:{gateway_port}/api/tunnel"
        self._token = token
        self._cards = cards
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "FakeAgent":
        """Connect and wait for the gateway's welcome."""
        self._thread.start()
        if not self._ready.wait(10):
            msg = "fake agent did not connect"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        """Disconnect."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._session())

    async def _session(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        headers = {"Authorization": f"Bearer {self._token}"}
        async with connect(self._url, additional_headers=headers, max_size=None) as ws:
            await ws.send(encode(Hello(PROTOCOL_VERSION, "fake", self._cards)))
            await ws.recv()
            self._ready.set()
            stopping = asyncio.create_task(self._stop.wait())
            while not self._stop.is_set():
                receiving = asyncio.create_task(ws.recv())
                done, _ = await asyncio.wait(
                    {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiving not in done:
                    receiving.cancel()
                    break
                try:
                    frame = decode(receiving.result())  # type: ignore[arg-type]
                except websockets.ConnectionClosed:
                    break
                if isinstance(frame, Ping):
                    await ws.send(encode(Pong(frame.payload)))
