"""Providers: a member's machines, online or not, what they serve, and adding a new one."""

import shlex
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.context import Web, form_text
from inference_club.protocol import ModelCard
from inference_club.store import AlreadyExists, InvalidValue, Provider
from inference_club.store.accounts import Account

# Where a llama.cpp server listens by default; the member edits it to their own servers.
EXAMPLE_BACKEND = "http://127.0.0.1:8080/v1"


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """A provider with what the registry knows about it right now."""

    provider: Provider
    online: bool
    models: tuple[ModelCard, ...]
    in_flight: int
    capacity: int


def agent_command(server: str, token: str, backend: str = EXAMPLE_BACKEND) -> str:
    """The exact command that connects a home machine as this provider."""
    return shlex.join(
        ["inference-club", "agent", "--server", server, "--token", token, "--backend", backend]
    )


async def provider_statuses(web: Web, account: Account) -> list[ProviderStatus]:
    """The member's providers, each with its live state."""
    services = web.services()
    statuses = []
    for provider in await services.store.list_providers(account.user.name):
        connection = services.registry.get(provider.id)
        online = connection is not None and not connection.closed
        statuses.append(
            ProviderStatus(
                provider=provider,
                online=online,
                models=tuple(connection.models.values()) if connection and online else (),
                in_flight=connection.in_flight if connection and online else 0,
                capacity=connection.capacity if connection and online else 0,
            )
        )
    return statuses


async def providers(web: Web, request: Request, account: Account) -> Response:
    """``GET /providers``: the page; its table reloads itself every 2 seconds."""
    return web.render(
        request,
        "providers.html",
        {"section": "providers", "statuses": await provider_statuses(web, account)},
        account=account,
    )


async def provider_status(web: Web, request: Request, account: Account) -> Response:
    """``GET /providers/status``: the table alone, for htmx to swap in."""
    return web.render(
        request,
        "_provider_status.html",
        {"statuses": await provider_statuses(web, account)},
        account=account,
        fragment=True,
    )


async def add_provider(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /providers``: register a provider and show its token and command, once."""
    name = form_text(form, "name").strip()
    try:
        provider, token = await web.services().store.add_provider(account.user.name, name)
    except (AlreadyExists, InvalidValue) as error:
        return web.render(
            request,
            "providers.html",
            {
                "section": "providers",
                "statuses": await provider_statuses(web, account),
                "error": str(error).capitalize() + ".",
                "name": name,
            },
            account=account,
            status=400,
        )
    base_url = web.services().settings.base_url
    return web.render(
        request,
        "provider_added.html",
        {
            "section": "providers",
            "provider": provider,
            "token": token,
            "command": agent_command(base_url, token),
            "example_backend": EXAMPLE_BACKEND,
        },
        account=account,
        status=201,
    )
