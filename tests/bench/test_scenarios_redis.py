"""The redis scenario finds the Redis server it meters."""

import asyncio
from pathlib import Path

from bench.scenarios_redis import redis_server_pid

from tests.support.processes import free_port


def test_the_redis_server_process_is_found_when_it_answers() -> None:
    """The local Redis answers: its process id is this machine's redis-server."""
    pid = asyncio.run(redis_server_pid("redis://127.0.0.1:6379/0"))
    assert pid is not None
    assert "redis" in Path(f"/proc/{pid}/comm").read_text()


def test_no_process_when_nothing_answers() -> None:
    """Nothing listens at the URL: no process to meter, and no error."""
    assert asyncio.run(redis_server_pid(f"redis://127.0.0.1:{free_port()}/0")) is None
