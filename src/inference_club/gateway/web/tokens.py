"""Settings → Token: a member's API keys, created (shown once), listed and revoked."""

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.context import Web, form_text
from inference_club.gateway.web.playground import PLAYGROUND_KEY_NAME
from inference_club.store import InvalidValue, NotFound
from inference_club.store.accounts import Account


async def tokens(web: Web, request: Request, account: Account) -> Response:
    """``GET /settings/token``."""
    return await _page(web, request, account)


async def create_token(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /settings/token``: a new key, shown on this response only."""
    name = form_text(form, "name").strip() or "default"
    try:
        key, secret = await web.services().store.create_api_key(account.user.name, name)
    except InvalidValue as error:
        return await _page(web, request, account, error=str(error).capitalize() + ".", status=400)
    return await _page(web, request, account, new_key=secret, new_key_name=key.name, status=201)


async def revoke_token(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /settings/token/{key_id}/revoke``: only the member's own keys."""
    del form
    try:
        key_id = int(request.path_params["key_id"])
        key = await web.services().store.revoke_user_api_key(account.user.id, key_id)
    except (ValueError, NotFound):
        return web.error(request, 404, "No such API key.", account=account)
    return web.redirect(
        "/settings/token", flash=f"Revoked the key {key.prefix}… ({key.name}).", request=request
    )


async def _page(
    web: Web,
    request: Request,
    account: Account,
    *,
    new_key: str | None = None,
    new_key_name: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    keys = await web.services().store.list_api_keys(account.user.name)
    active = [key for key in keys if key.revoked_at is None]
    revoked = [key for key in keys if key.revoked_at is not None]
    return web.render(
        request,
        "tokens.html",
        {
            "section": "settings",
            "active": sorted(active, key=lambda key: key.created_at, reverse=True),
            "revoked": sorted(revoked, key=lambda key: key.revoked_at or key.created_at)[-10:],
            "new_key": new_key,
            "new_key_name": new_key_name,
            "error": error,
            "playground_name": PLAYGROUND_KEY_NAME,
        },
        account=account,
        status=status,
    )
