"""The lean Redis client: URLs, the reply parser, and pipelining against the real Redis."""

import asyncio
import socket
import time
import uuid

import pytest
import uvloop

from inference_club.gateway.redis_client import (
    RedisAddress,
    RedisClient,
    RedisReplyError,
    RedisUnavailable,
    ReplyParser,
    encode_command,
    parse_redis_url,
)
from tests.support.redis_relay import RedisRelay

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_urls_give_host_port_database_tls_and_credentials() -> None:
    """Every form the README gives parses; the password stays out of the address's repr."""
    assert parse_redis_url("redis://127.0.0.1:6379/0") == RedisAddress("127.0.0.1", 6379)
    assert parse_redis_url("redis://cache.example") == RedisAddress("cache.example", 6379)
    secured = parse_redis_url("rediss://club:s%40cret@cache.example:6380/3")
    assert secured == RedisAddress(
        "cache.example", 6380, tls=True, username="club", password="s@cret", db=3
    )
    assert "s@cret" not in repr(secured)
    assert parse_redis_url("redis://:only-password@h/2").password == "only-password"
    assert parse_redis_url("redis://:only-password@h/2").username is None
    local = parse_redis_url("unix:///run/redis.sock?db=4")
    assert (local.unix_path, local.db) == ("/run/redis.sock", 4)


@pytest.mark.parametrize(
    "url",
    [
        "http://:hunter2@127.0.0.1:6379",
        "redis://:hunter2@127.0.0.1:port/0",
        "redis://:hunter2@127.0.0.1:6379/zero",
        "unix://:hunter2@",
    ],
)
def test_bad_urls_are_refused_without_showing_the_password(url: str) -> None:
    """A URL that is not a Redis one is a ValueError that names the problem, not the secret."""
    with pytest.raises(ValueError, match="Redis URL") as caught:
        parse_redis_url(url)
    assert "hunter2" not in str(caught.value)


def test_commands_are_arrays_of_bulk_strings() -> None:
    """Text, bytes and integers all go as bulk strings (RESP)."""
    encoded = encode_command(["SET", b"k\r\n", 12])
    assert encoded == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n"


def test_replies_parse_the_same_however_the_bytes_are_split() -> None:
    """Integers, bulk and null bulk strings, simple strings, errors and nested arrays, fed
    whole or one byte at a time, give the same replies in the same order."""
    wire = (
        b":42\r\n$5\r\nhe\r\no\r\n$-1\r\n+OK\r\n-WRONGTYPE not a number\r\n"
        b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n:-7\r\n$0\r\n\r\n*-1\r\n"
    )

    def shape(replies: list[object]) -> list[object]:
        return [str(reply) if isinstance(reply, RedisReplyError) else reply for reply in replies]

    whole = ReplyParser().feed(wire)
    assert shape(whole) == [
        42,
        b"he\r\no",
        None,
        b"OK",
        "WRONGTYPE not a number",
        [1, [b"a", -7], b""],
        None,
    ]
    assert isinstance(whole[4], RedisReplyError)
    parser = ReplyParser()
    piecewise: list[object] = []
    for index in range(len(wire)):
        piecewise += parser.feed(wire[index : index + 1])
    assert shape(piecewise) == shape(whole)


async def test_pipelined_batches_get_their_own_replies_in_order() -> None:
    """Concurrent batches on one connection each get their replies, and an error reply takes
    its command's place without losing the connection."""
    client = RedisClient(REDIS_URL)
    key = f"test:redis-client:{uuid.uuid4().hex}"
    try:
        first, second = await asyncio.gather(
            client.execute(["SET", key, "word"], ["GET", key], ["INCR", key]),
            client.execute(["SET", key + ":n", 5, "EX", 60], ["INCR", key + ":n"]),
        )
        assert first[:2] == [b"OK", b"word"]
        assert isinstance(first[2], RedisReplyError)
        assert "not an integer" in str(first[2])
        assert second == [b"OK", 6]
        assert await client.execute(["DEL", key, key + ":n"]) == [2]
    finally:
        await client.close()


async def test_thousands_of_concurrent_commands_share_one_connection() -> None:
    """No pool, so no cap: 5,000 commands at once all succeed, on a single connection."""
    client = RedisClient(REDIS_URL)
    key = f"test:redis-client:{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(
            *(client.execute(["INCR", key], ["CLIENT", "ID"]) for _ in range(5000))
        )
        assert sorted(result[0] for result in results) == list(range(1, 5001))
        assert len({result[1] for result in results}) == 1
        await client.execute(["DEL", key])
    finally:
        await client.close()


async def test_the_url_database_is_selected() -> None:
    """/5 in the URL: the client's keys live in database 5, not in database 0."""
    in_five, in_zero = RedisClient("redis://127.0.0.1:6379/5"), RedisClient(REDIS_URL)
    key = f"test:redis-client:{uuid.uuid4().hex}"
    try:
        await in_five.execute(["SET", key, "here", "EX", 60])
        assert await in_zero.execute(["GET", key]) == [None]
        assert await in_five.execute(["GET", key], ["DEL", key]) == [b"here", 1]
    finally:
        await in_five.close()
        await in_zero.close()


async def test_a_refused_sign_in_fails_without_showing_the_password() -> None:
    """This Redis has no password: AUTH is refused, and the error says so, not the secret."""
    client = RedisClient("redis://:not-the-password@127.0.0.1:6379/0")
    try:
        with pytest.raises(RedisUnavailable, match="refused the sign-in") as caught:
            await client.execute(["PING"])
        assert "not-the-password" not in str(caught.value)
    finally:
        await client.close()


async def test_a_lost_connection_fails_what_was_in_flight_and_the_next_command_reconnects(
    redis_relay: RedisRelay,
) -> None:
    """Commands waiting when the connection drops fail with RedisUnavailable; the next one
    opens a new connection and succeeds."""
    await redis_relay.start()
    client = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0")
    try:
        assert await client.execute(["PING"]) == [b"PONG"]
        blocked = asyncio.ensure_future(client.execute(["BLPOP", uuid.uuid4().hex, 5]))
        await asyncio.sleep(0.1)
        redis_relay.drop_connections()
        with pytest.raises(RedisUnavailable, match="closed"):
            await blocked
        assert await client.execute(["PING"]) == [b"PONG"]
        assert redis_relay.accepted == 2
    finally:
        await client.close()


async def test_after_a_failed_connection_commands_fail_at_once_until_the_delay_passes(
    redis_relay: RedisRelay,
) -> None:
    """Nothing listens: the first command fails to connect, and until the reconnect delay
    passes the next ones fail without trying (the relay, started meanwhile, sees nobody)."""
    patient = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0", reconnect_delay=60)
    eager = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0", reconnect_delay=0)
    try:
        for client in (patient, eager):
            with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{redis_relay.port}"):
                await client.execute(["PING"])
        await redis_relay.start()
        with pytest.raises(RedisUnavailable):
            await patient.execute(["PING"])
        assert redis_relay.accepted == 0
        assert await eager.execute(["PING"]) == [b"PONG"]
        assert redis_relay.accepted == 1
    finally:
        await patient.close()
        await eager.close()


async def test_a_server_that_never_answers_times_out(redis_relay: RedisRelay) -> None:
    """A connection whose replies stop coming is given up within about two timeouts."""
    redis_relay.silent = True
    await redis_relay.start()
    client = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0", timeout=0.2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisUnavailable, match="did not answer within 0.2 s"):
            await client.execute(["PING"])
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await client.close()


async def test_a_host_name_that_cannot_be_looked_up_fails_instead_of_hanging() -> None:
    """A name the resolver refuses outright (an empty label raises UnicodeError, not OSError)
    fails the command like any connection failure, and the next one too."""
    client = RedisClient("redis://redis..internal:6379/0")
    try:
        for _ in range(2):
            with pytest.raises(RedisUnavailable, match=r"redis\.\.internal:6379"):
                await asyncio.wait_for(client.execute(["PING"]), 5)
    finally:
        await client.close()


async def test_commands_waiting_for_a_connection_fail_when_the_client_closes() -> None:
    """Closed before its connection attempt even ran: the waiting command fails, no hang."""
    client = RedisClient(REDIS_URL)
    waiting = asyncio.ensure_future(client.execute(["PING"]))
    await asyncio.sleep(0)  # the command is queued; the connection task has not run
    await client.close()
    with pytest.raises(RedisUnavailable, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_after_a_timeout_commands_fail_at_once_until_the_delay_passes(
    redis_relay: RedisRelay,
) -> None:
    """A server that takes connections but never answers: one command waits out the timeout;
    the next ones fail at once instead of each opening a connection and waiting again."""
    redis_relay.silent = True
    await redis_relay.start()
    client = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0", timeout=0.2, reconnect_delay=60)
    try:
        with pytest.raises(RedisUnavailable, match="did not answer"):
            await client.execute(["PING"])
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisUnavailable, match="did not answer"):
            await client.execute(["PING"])
        assert asyncio.get_running_loop().time() - started < 0.1
        assert redis_relay.accepted == 1
    finally:
        await client.close()


def test_a_loop_held_up_past_the_timeout_does_not_lose_a_reply_that_came() -> None:
    """On uvloop, which runs due timers before it reads sockets: another socket's callback
    holds the loop for longer than the timeout while Redis's reply arrives; the reply is
    read, not given up on."""

    async def scenario() -> object:
        loop = asyncio.get_running_loop()
        client = RedisClient(REDIS_URL, timeout=0.2)
        blocker, trigger = socket.socketpair()
        try:
            await client.execute(["PING"])  # connected
            # When readable, this holds the loop in the poll that would read Redis's reply.
            loop.add_reader(blocker, lambda: (blocker.recv(1), time.sleep(0.5)))
            answered: asyncio.Future[object] = loop.create_future()
            client.send([["PING"]], answered.set_result)
            trigger.send(b"x")
            return await answered
        finally:
            loop.remove_reader(blocker)
            blocker.close()
            trigger.close()
            await client.close()

    assert uvloop.run(scenario()) == [b"PONG"]
