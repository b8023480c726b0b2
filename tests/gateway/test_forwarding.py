"""Waiting for a provider's response head: the agent's timeout and the gateway's are one."""

import asyncio

import pytest

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.errors import UpstreamError
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.forwarding import OutgoingRequest, open_upstream
from inference_club.gateway.registry import Candidate
from inference_club.protocol import BACKEND_TIMEOUT, Error, ModelCard, encode

CARD = ModelCard("m")


async def _nothing(*_args: object) -> None:
    return None


async def test_the_agents_timeout_before_the_head_is_the_gateways_timeout() -> None:
    """The agent's wait for the model server ends with the gateway's (the request carries
    its timeout); heard first, it gives the client the gateway's timeout error, with no
    second provider tried, whichever of the two timers fires first."""
    sent = asyncio.Event()

    async def send_bytes(_data: bytes) -> None:
        sent.set()

    first, second = (
        ProviderConnection(
            provider_id=number,
            provider_name=f"home-{number}",
            owner_id=1,
            models=(CARD,),
            send_bytes=send_bytes,
            close_socket=_nothing,
        )
        for number in (1, 2)
    )
    exchange = Exchange(endpoint="chat.completions")
    waiting = asyncio.create_task(
        open_upstream(
            [Candidate(first, CARD), Candidate(second, CARD)],
            OutgoingRequest("POST", "/chat/completions", "m", b"{}"),
            exchange,
            timeout=30,
            max_attempts=2,
        )
    )
    await asyncio.wait_for(sent.wait(), 5)
    first.handle_message(encode(Error(1, BACKEND_TIMEOUT, "no answer within 30 s")))
    with pytest.raises(UpstreamError, match="did not answer within 30 seconds"):
        await asyncio.wait_for(waiting, 5)
    assert exchange.error_type == "upstream_timeout"
    assert exchange.provider_id == 1
