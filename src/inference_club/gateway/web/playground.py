"""The playground: try every model from the browser, through /v1 with a session API key.

The page's script calls ``/v1`` with an API key of the member named ``playground``, so its
requests take the same path as any client's: same routing, same metering, same limits.
Each session gets its own key; making one revokes the member's previous playground key.
"""

import contextlib

from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.catalog import usable_models
from inference_club.gateway.web.context import Web
from inference_club.store import NotFound
from inference_club.store.accounts import Account

PLAYGROUND_KEY_NAME = "playground"
SESSION_PLAYGROUND_KEY = "playground_key"


async def playground_key(web: Web, request: Request, account: Account) -> str:
    """This session's playground key, made on first use (revoking the previous one)."""
    store = web.services().store
    secret = request.session.get(SESSION_PLAYGROUND_KEY)
    if isinstance(secret, str):
        identity = await store.authenticate_api_key(secret)
        if identity is not None and identity.user_id == account.user.id:
            return secret
    for key in await store.list_api_keys(account.user.name):
        if key.name == PLAYGROUND_KEY_NAME and key.revoked_at is None:
            await store.revoke_user_api_key(account.user.id, key.id)
    _key, secret = await store.create_api_key(account.user.name, PLAYGROUND_KEY_NAME)
    request.session[SESSION_PLAYGROUND_KEY] = secret
    return secret


async def drop_playground_key(web: Web, request: Request, account: Account) -> None:
    """Revoke the session's playground key (on sign-out)."""
    secret = request.session.pop(SESSION_PLAYGROUND_KEY, None)
    if not isinstance(secret, str):
        return
    store = web.services().store
    identity = await store.authenticate_api_key(secret)
    if identity is not None and identity.user_id == account.user.id:
        with contextlib.suppress(NotFound):  # revoked and gone meanwhile
            await store.revoke_user_api_key(account.user.id, identity.key_id)


async def playground(web: Web, request: Request, account: Account) -> Response:
    """``GET /playground``: chat, speech, transcription and images."""
    models = await usable_models(web.services(), account.user.id)
    by_type = {
        kind: [model for model in models if model.service_type == kind]
        for kind in ("llm", "tts", "stt", "image")
    }
    tab = request.query_params.get("tab", "chat")
    if tab not in ("chat", "speech", "transcribe", "image"):
        tab = "chat"
    return web.render(
        request,
        "playground.html",
        {
            "section": "playground",
            "models": by_type,
            "tab": tab,
            "key": await playground_key(web, request, account),
            "preselect": request.query_params.get("model", ""),
        },
        account=account,
    )
