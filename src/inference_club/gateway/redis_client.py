"""A lean Redis client: one pipelined connection, and replies handed over from its callbacks.

The gateway asks Redis one small thing per request (count it in its key's window). A pooled
client pays, per request, for a connection taken from the pool and given back, a task's steps
through its layers, and past its pool's size it refuses ("too many connections"): a hidden cap
on the gateway's concurrency. Here every command goes down one connection as it comes
(pipelining: Redis answers in order), so a thousand requests in flight cost one socket, and the
replies reach their callbacks from the protocol's ``data_received``, without a task.

Errors (``RedisError`` is the root):

- ``RedisReplyError``: Redis answered a command with an error (``-ERR ...``); the reply list
  carries it in that command's place, and the connection stays.
- ``RedisUnavailable``: no connection (refused, unreachable,
  closed, authentication refused) or no reply within the timeout. Every command in flight on
  the connection fails with it; the next command connects again, no sooner than
  ``reconnect_delay`` after a failed attempt, failing at once until then.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS and
``unix://[[user]:password@]/path/to/socket[?db=N]``. The password never appears in an error.
"""

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6379
# How long a command may wait for its reply before the connection is given up.
DEFAULT_TIMEOUT = 1.0
# After a failed connection attempt, commands fail at once for this long instead of each
# waiting for a connection that is probably still refused.
DEFAULT_RECONNECT_DELAY = 1.0
# How soon the watchdog looks again when it ran late (the loop was busy).
_RECHECK = 0.05

Argument = bytes | str | int
# Called once with every reply of a batch (in order), or with the error that lost them.
OnReplies = Callable[["list[object] | RedisUnavailable"], None]


class RedisError(Exception):
    """Root of this module's errors."""


class RedisReplyError(RedisError):
    """Redis answered one command with an error."""


class RedisUnavailable(RedisError):
    """No connection to Redis, or no reply in time."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where Redis is and how to sign in; ``repr`` leaves the password out."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0

    def __repr__(self) -> str:
        where = self.unix_path or f"{self.host}:{self.port}"
        return f"RedisAddress({where}, db={self.db}, tls={self.tls})"

    @property
    def where(self) -> str:
        """Host and port, or the socket's path: what messages may show."""
        return self.unix_path or f"{self.host}:{self.port}"


def parse_redis_url(url: str) -> RedisAddress:
    """The address in a Redis URL; ValueError (without the password) when it is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        msg = "a Redis URL starts with redis://, rediss:// or unix://"
        raise ValueError(msg)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    query = parse_qs(parts.query)
    db_text = query.get("db", [""])[0]
    if scheme == "unix":
        if not parts.path:
            msg = "a unix:// Redis URL names the socket's path"
            raise ValueError(msg)
        return RedisAddress(
            unix_path=unquote(parts.path),
            username=username,
            password=password,
            db=_db_number(db_text or "0"),
        )
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        msg = "the Redis URL's port is not a number from 1 to 65535"
        raise ValueError(msg) from None
    path = parts.path.strip("/")
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        tls=scheme == "rediss",
        username=username,
        password=password,
        db=_db_number(db_text or path or "0"),
    )


def _db_number(text: str) -> int:
    if not text.isdigit():
        msg = "the Redis URL's database is not a number"
        raise ValueError(msg)
    return int(text)


def encode_command(arguments: Sequence[Argument]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, str):
            data = argument.encode()
        elif isinstance(argument, int):
            data = b"%d" % argument
        else:
            data = argument
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


# The first byte of each kind of reply.
_SIMPLE, _ERROR, _INTEGER, _BULK, _ARRAY = b"+-:$*"


def encode_commands(commands: Sequence[Sequence[Argument]]) -> bytes:
    """Commands written together, one RESP array each."""
    return b"".join(encode_command(command) for command in commands)


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


class ReplyParser:
    """Replies out of the bytes Redis sends, however they are split (RESP2)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """Every reply completed by ``data``, in order."""
        buffer = self._buffer
        buffer += data
        replies: list[object] = []
        position = 0
        while position < len(buffer):
            try:
                reply, position = self._parse(buffer, position)
            except _Incomplete:
                break
            replies.append(reply)
        del buffer[:position]
        return replies

    def _parse(self, buffer: bytearray, position: int) -> tuple[object, int]:
        end = buffer.find(b"\r\n", position)
        if end < 0:
            raise _Incomplete
        kind = buffer[position]
        line = bytes(buffer[position + 1 : end])
        after = end + 2
        if kind == _BULK:
            size = int(line)
            if size < 0:
                return None, after
            if len(buffer) < after + size + 2:
                raise _Incomplete
            return bytes(buffer[after : after + size]), after + size + 2
        if kind == _ARRAY:
            count = int(line)
            if count < 0:
                return None, after
            items: list[object] = []
            for _ in range(count):
                item, after = self._parse(buffer, after)
                items.append(item)
            return items, after
        return _one_line(kind, line), after


def _one_line(kind: int, line: bytes) -> object:
    """A reply that fits its first line: an integer, a simple string or an error."""
    if kind == _INTEGER:
        return int(line)
    if kind == _SIMPLE:
        return line
    if kind == _ERROR:
        return RedisReplyError(line.decode(errors="replace"))
    msg = f"not a RESP reply (first byte {kind!r})"
    raise RedisUnavailable(msg)


@dataclass(slots=True)
class _Batch:
    """Commands written together, waiting for their replies."""

    expected: int
    on_replies: OnReplies
    sent_at: float
    replies: list[object]


class _RedisProtocol(asyncio.Protocol):
    """The connection: writes batches, hands each its replies as they complete."""

    def __init__(self, lost: Callable[["_RedisProtocol", RedisUnavailable], None]) -> None:
        self._lost = lost
        self._parser = ReplyParser()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Batch] = deque()
        self.failure: RedisUnavailable | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, expected: int, on_replies: OnReplies) -> None:
        assert self.transport is not None, "sent on a connected protocol only"
        self.waiting.append(_Batch(expected, on_replies, time.monotonic(), []))
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except (RedisUnavailable, ValueError) as exc:
            self.abort(RedisUnavailable(f"Redis sent what is not a reply ({exc})"))
            return
        waiting = self.waiting
        for reply in replies:
            if not waiting:
                self.abort(RedisUnavailable("Redis sent a reply nobody asked for"))
                return
            batch = waiting[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.expected:
                waiting.popleft()
                _hand_over(batch.on_replies, batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        failure = self.failure or RedisUnavailable("the connection to Redis closed")
        self.transport = None
        self._lost(self, failure)
        waiting, self.waiting = self.waiting, deque()
        for batch in waiting:
            _hand_over(batch.on_replies, failure)

    def abort(self, failure: RedisUnavailable) -> None:
        """Drop the connection; everything in flight fails with ``failure``."""
        self.failure = failure
        if self.transport is not None:
            self.transport.abort()


class RedisClient:
    """Commands pipelined on one connection, opened when first needed and again after a loss."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
    ) -> None:
        self.address = parse_redis_url(url)
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        self._protocol: _RedisProtocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        # Batches written while the connection is being opened.
        self._queued: list[tuple[bytes, int, OnReplies]] = []
        self._failed_until = 0.0
        self._last_failure: RedisUnavailable | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_due = 0.0
        self._closed = False

    def send(self, commands: Sequence[Sequence[Argument]], on_replies: OnReplies) -> None:
        """Write ``commands`` together; ``on_replies`` gets their replies in order (a command
        that failed has a ``RedisReplyError`` in its place), or the ``RedisUnavailable`` that
        lost them. It may be called before this returns (no connection, and none may be tried
        yet), else from the connection's callbacks."""
        data = encode_commands(commands)
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.send(data, len(commands), on_replies)
            self._watch()
            return
        if self._closed:
            on_replies(RedisUnavailable("the Redis client is closed"))
            return
        if self._connecting is None:
            if time.monotonic() < self._failed_until:
                assert self._last_failure is not None  # set with the delay
                on_replies(self._last_failure)
                return
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        self._queued.append((data, len(commands), on_replies))

    async def execute(self, *commands: Sequence[Argument]) -> list[object]:
        """Send ``commands`` together and wait for their replies; RedisUnavailable when lost."""
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        self.send(commands, _settling(future))
        return await future

    async def close(self) -> None:
        """Close the connection; commands in flight or waiting for a connection fail."""
        self._closed = True
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            # A task cancelled before it ran never fails its queue itself; none of its
            # outcomes may stop the caller's shutdown.
            await asyncio.wait([connecting])
            if not connecting.cancelled():
                connecting.exception()
        self._fail_queued(RedisUnavailable("the Redis client is closed"))
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.abort(RedisUnavailable("the Redis client is closed"))

    async def _connect(self) -> None:
        address = self.address
        loop = asyncio.get_running_loop()
        protocol = _RedisProtocol(self._connection_lost)
        try:
            async with asyncio.timeout(self._timeout):
                if address.unix_path is not None:
                    await loop.create_unix_connection(lambda: protocol, address.unix_path)
                else:
                    tls = ssl.create_default_context() if address.tls else None
                    await loop.create_connection(
                        lambda: protocol, address.host, address.port, ssl=tls
                    )
                await self._sign_in(protocol)
        except asyncio.CancelledError:
            self._fail_queued(RedisUnavailable("the Redis client is closed"))
            protocol.abort(RedisUnavailable("the Redis client is closed"))
            raise
        except Exception as exc:
            # Any failure (a host name that cannot be looked up raises UnicodeError) must fail
            # the queue, or its callbacks would wait forever.
            protocol.abort(RedisUnavailable("the Redis connection failed"))
            failure = RedisUnavailable(_describe(exc, address))
            self._hold_off(failure)
            self._fail_queued(failure)
            return
        finally:
            self._connecting = None
        self._protocol = protocol
        queued, self._queued = self._queued, []
        for data, expected, on_replies in queued:
            protocol.send(data, expected, on_replies)
        if queued:
            self._watch()

    async def _sign_in(self, protocol: _RedisProtocol) -> None:
        """AUTH and SELECT, when the URL asks for them, before any other command."""
        address = self.address
        commands: list[list[Argument]] = []
        if address.password is not None:
            if address.username:
                commands.append(["AUTH", address.username, address.password])
            else:
                commands.append(["AUTH", address.password])
        if address.db:
            commands.append(["SELECT", address.db])
        if not commands:
            return
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        data = encode_commands(commands)
        protocol.send(data, len(commands), _settling(future))
        replies = await future
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                # Redis's own words (WRONGPASS, NOAUTH, ...) never include the password.
                raise reply

    def _fail_queued(self, failure: RedisUnavailable) -> None:
        queued, self._queued = self._queued, []
        for _data, _expected, on_replies in queued:
            _hand_over(on_replies, failure)

    def _connection_lost(self, protocol: _RedisProtocol, failure: RedisUnavailable) -> None:
        if self._protocol is protocol:
            self._protocol = None
            self._last_failure = failure

    def _hold_off(self, failure: RedisUnavailable) -> None:
        """Fail commands at once with ``failure`` until the reconnect delay has passed."""
        self._last_failure = failure
        self._failed_until = time.monotonic() + self._reconnect_delay

    def _watch(self, delay: float | None = None, *, recheck: bool = False) -> None:
        """Check every ``timeout`` seconds, while replies are awaited, that the oldest is not
        overdue; one timer for the connection instead of one per command."""
        if self._watchdog is None:
            loop = asyncio.get_running_loop()
            wait = self._timeout if delay is None else delay
            self._watch_due = loop.time() + wait
            self._watchdog = loop.call_later(wait, self._check, recheck)

    def _check(self, recheck: bool) -> None:
        self._watchdog = None
        protocol = self._protocol
        if protocol is None or not protocol.waiting:
            return
        late = asyncio.get_running_loop().time() - self._watch_due > self._timeout / 4
        if late and not recheck:
            # The loop itself was held up, and uvloop runs due timers before it reads the
            # sockets: a reply may be waiting unread. Look once more after the next read (one
            # look only: a loop that is always late must still give up on a dead server).
            self._watch(min(_RECHECK, self._timeout / 4), recheck=True)
            return
        if time.monotonic() - protocol.waiting[0].sent_at > self._timeout:
            failure = RedisUnavailable(f"Redis did not answer within {self._timeout:g} s")
            # A server that takes connections but does not answer would otherwise hold every
            # request for the timeout, once per new connection.
            self._hold_off(failure)
            protocol.abort(failure)
            return
        self._watch()


def _hand_over(on_replies: OnReplies, replies: "list[object] | RedisUnavailable") -> None:
    """Call a batch's callback; what it raises is logged, so the replies of the batches after
    it still reach theirs."""
    try:
        on_replies(replies)
    except Exception:
        logger.exception("a Redis reply's callback failed")


def _settling(future: "asyncio.Future[list[object]]") -> OnReplies:
    """Replies that settle ``future``: its result, or the RedisUnavailable that lost them."""

    def settle(replies: "list[object] | RedisUnavailable") -> None:
        if future.done():
            return
        if isinstance(replies, RedisUnavailable):
            future.set_exception(replies)
        else:
            future.set_result(replies)

    return settle


def _describe(exc: BaseException, address: RedisAddress) -> str:
    if isinstance(exc, TimeoutError):
        return f"cannot connect to Redis at {address.where}: no answer in time"
    if isinstance(exc, RedisReplyError):
        return f"Redis at {address.where} refused the sign-in: {exc}"
    if isinstance(exc, RedisUnavailable):
        return str(exc)
    reason = str(exc)
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
    return f"cannot connect to Redis at {address.where}: {reason}"
