"""A TCP relay in front of the real Redis, for tests of what a client does when it fails."""

import asyncio
import contextlib


class RedisRelay:
    """A TCP relay to the real Redis that can be started, stopped and made to go silent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silent = False
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

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
            sink.transport.abort()

        await asyncio.gather(pipe(reader, redis_writer), pipe(redis_reader, writer))
