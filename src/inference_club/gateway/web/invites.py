"""Admin → Invites: links that let new members join, made and revoked by admins."""

from datetime import UTC, datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.context import Web
from inference_club.store import NotFound
from inference_club.store.accounts import Account
from inference_club.store.records import User


def invite_url(base_url: str, token: str) -> str:
    """The link a new member opens."""
    return f"{base_url.rstrip('/')}/join/{token}"


async def invites(web: Web, request: Request, account: Account) -> Response:
    """``GET /admin/invites``."""
    return await _page(web, request, account)


async def create_invite(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /admin/invites``: a new link, shown on this response only."""
    _invite, token = await web.services().store.create_invite(
        created_by=account.user.name, is_admin=form.get("admin") == "on"
    )
    url = invite_url(web.services().settings.base_url, token)
    return await _page(web, request, account, new_url=url, status=201)


async def revoke_invite(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /admin/invites/{invite_id}/revoke``."""
    del form
    invite_id = str(request.path_params["invite_id"])
    try:
        await web.services().store.revoke_invite(invite_id)
    except NotFound:
        return web.error(request, 404, "No such invite.", account=account)
    return web.redirect("/admin/invites", flash="Invite revoked.", request=request)


async def _page(
    web: Web, request: Request, account: Account, *, new_url: str | None = None, status: int = 200
) -> Response:
    store = web.services().store
    members: list[User] = await store.list_users()
    return web.render(
        request,
        "invites.html",
        {
            "section": "admin",
            "invites": await store.list_invites(),
            "members": members,
            "new_url": new_url,
            "now": datetime.now(UTC),
        },
        account=account,
        status=status,
        # The page may hold an invite link: keep it out of referrers.
        headers={"referrer-policy": "no-referrer"},
    )
