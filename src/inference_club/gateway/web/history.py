"""History: a member's requests page by page, and the images and speech they made."""

import contextlib

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.assets import ASSET_PATH_PREFIX
from inference_club.gateway.web.charts import KIND_OF_ENDPOINT
from inference_club.gateway.web.context import Web
from inference_club.store import NotFound
from inference_club.store.accounts import Account

PAGE_SIZE = 50
MEDIA_PAGE_SIZE = 48


def _page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


async def history(web: Web, request: Request, account: Account) -> Response:
    """``GET /history?page=N``: newest first; admins may add ``member=NAME``."""
    store = web.services().store
    member = request.query_params.get("member") or account.user.name
    if member != account.user.name:
        if not account.user.is_admin:
            return web.error(request, 403, "You can only see your own history.", account=account)
        try:
            user = await store.get_user(member)
        except NotFound:
            return web.error(request, 404, "No such member.", account=account)
    else:
        user = account.user
    page = _page_number(request)
    # One more than a page tells whether there is a next one.
    records = await store.list_usage(
        user_id=user.id, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    names = {provider.id: provider.name for provider in await store.list_providers()}
    return web.render(
        request,
        "history.html",
        {
            "section": "history",
            "member": user.name if user.id != account.user.id else None,
            "records": records[:PAGE_SIZE],
            "page": page,
            "has_next": len(records) > PAGE_SIZE,
            "provider_names": names,
            "kinds": KIND_OF_ENDPOINT,
        },
        account=account,
    )


async def media(web: Web, request: Request, account: Account) -> Response:
    """``GET /history/media``: the member's images as a gallery and speech with players."""
    page = _page_number(request)
    assets = await web.services().store.list_assets(
        user_id=account.user.id, limit=MEDIA_PAGE_SIZE + 1, offset=(page - 1) * MEDIA_PAGE_SIZE
    )
    shown = assets[:MEDIA_PAGE_SIZE]
    return web.render(
        request,
        "media.html",
        {
            "section": "history",
            "images": [asset for asset in shown if asset.kind == "image"],
            "audio": [asset for asset in shown if asset.kind == "audio"],
            "page": page,
            "has_next": len(assets) > MEDIA_PAGE_SIZE,
            # Relative, so the page loads them from the host it was opened on.
            "asset_prefix": ASSET_PATH_PREFIX,
        },
        account=account,
    )


async def delete_media(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /history/media/{asset_id}/delete``: only the member's own assets."""
    del form
    services = web.services()
    asset_id = str(request.path_params["asset_id"])
    try:
        asset = await services.store.get_asset(asset_id)
    except NotFound:
        asset = None
    if asset is None or asset.user_id != account.user.id:
        # Another member's asset is answered exactly like one that does not exist.
        return web.error(request, 404, "No such image or recording.", account=account)
    with contextlib.suppress(NotFound):  # deleted by another request meanwhile
        await services.assets.delete(asset_id)
    what = "image" if asset.kind == "image" else "recording"
    return web.redirect("/history/media", flash=f"Deleted the {what}.", request=request)
