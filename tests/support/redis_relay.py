"""A TCP relay in front of the real Redis, for tests of what a client does when it fails."""

import asyncio
import contextlib
import threading


class RedisRelay:
    """A TCP relay to the real Redis that can be started, stopped and made to go silent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silent = False
        # Seconds each piece of a client's commands is held before it goes on to Redis.
        self.delay = 0.0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop_connections()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        if self.silent:
            await reader.read()  # takes the commands, never answers
            return
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers.append(redis_writer)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float
        ) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    sink.write(data)
            sink.transport.abort()

        await asyncio.gather(
            pipe(reader, redis_writer, self.delay), pipe(redis_reader, writer, 0.0)
        )


class RelayThread:
    """A ``RedisRelay`` served from a thread of its own, for tests whose gateway is another
    process and whose own code blocks."""

    def __init__(self, relay: RedisRelay) -> None:
        self.relay = relay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> RedisRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.relay.start(), self._loop).result(10)
        return self.relay

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.relay.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
