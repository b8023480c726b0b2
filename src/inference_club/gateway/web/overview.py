"""The overview: where a member lands after signing in."""

from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.catalog import usable_models
from inference_club.gateway.web.context import Web
from inference_club.gateway.web.providers import provider_statuses
from inference_club.store.accounts import Account

RECENT = 5


async def overview(web: Web, request: Request, account: Account) -> Response:
    """``GET /``: the API's address, the member's machines and latest requests."""
    services = web.services()
    statuses = await provider_statuses(web, account)
    keys = await services.store.list_api_keys(account.user.name)
    names = {provider.id: provider.name for provider in await services.store.list_providers()}
    return web.render(
        request,
        "overview.html",
        {
            "section": "overview",
            "online": sum(status.online for status in statuses),
            "providers": len(statuses),
            "models": len(await usable_models(services, account.user.id)),
            "active_keys": sum(key.revoked_at is None for key in keys),
            "recent": await services.store.list_usage(user_id=account.user.id, limit=RECENT),
            "provider_names": names,
        },
        account=account,
    )
