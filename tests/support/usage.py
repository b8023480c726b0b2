"""Reading a test gateway's usage records from its database."""

import asyncio
import time
from pathlib import Path

from inference_club.store import Store, UsageRecord, default_database_url


async def chat_records(data: Path, count: int, timeout: float = 10.0) -> list[UsageRecord]:
    """The chat completion records once ``count`` are written (or what there is at
    ``timeout``): records go to the database in batches, a moment after their request."""
    store = await Store.open(default_database_url(data))
    try:
        deadline = time.monotonic() + timeout
        while True:
            records = await store.list_usage(limit=100)
            # /v1/models polls while waiting for the agent are metered too; count the chats.
            chats = [r for r in records if r.endpoint == "chat.completions"]
            if len(chats) >= count or time.monotonic() > deadline:
                return chats
            await asyncio.sleep(0.1)
    finally:
        await store.close()
