"""Every dashboard route, in one list the gateway mounts next to its own."""

from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from inference_club.gateway.services import Services
from inference_club.gateway.web import (
    docs,
    history,
    invites,
    models,
    overview,
    playground,
    providers,
    signin,
    tokens,
    usage,
)
from inference_club.gateway.web.context import STATIC_DIR, Web
from inference_club.gateway.web.secret import load_session_secret
from inference_club.gateway.web.sessions import CookiePolicy, SessionMiddleware

GET = ["GET", "HEAD"]
POST = ["POST"]


def web_routes(services: Callable[[], Services]) -> list[BaseRoute]:
    """The dashboard's pages, forms, docs and static files."""
    web = Web(services)
    return [
        Route("/", web.page(overview.overview), methods=GET),
        Route("/login", web.public(signin.sign_in_form), methods=GET),
        Route("/login", web.public_action(signin.sign_in), methods=POST),
        Route("/logout", web.action(signin.sign_out), methods=POST),
        Route("/join/{token}", web.public(signin.join_form), methods=GET),
        Route("/join/{token}", web.public_action(signin.join), methods=POST),
        Route("/settings/password", web.page(signin.password_form), methods=GET),
        Route("/settings/password", web.action(signin.change_password), methods=POST),
        Route("/settings/token", web.page(tokens.tokens), methods=GET),
        Route("/settings/token", web.action(tokens.create_token), methods=POST),
        Route("/settings/token/{key_id}/revoke", web.action(tokens.revoke_token), methods=POST),
        Route("/providers", web.page(providers.providers), methods=GET),
        Route("/providers", web.action(providers.add_provider), methods=POST),
        Route("/providers/status", web.page(providers.provider_status), methods=GET),
        Route("/models", web.page(models.models), methods=GET),
        Route("/models/share", web.action(models.share_model), methods=POST),
        Route("/playground", web.page(playground.playground), methods=GET),
        Route("/history", web.page(history.history), methods=GET),
        Route("/history/media", web.page(history.media), methods=GET),
        Route("/history/media/{asset_id}/delete", web.action(history.delete_media), methods=POST),
        Route("/usage", web.page(usage.usage), methods=GET),
        Route("/admin/invites", web.admin_page(invites.invites), methods=GET),
        Route("/admin/invites", web.admin_action(invites.create_invite), methods=POST),
        Route(
            "/admin/invites/{invite_id}/revoke",
            web.admin_action(invites.revoke_invite),
            methods=POST,
        ),
        Route("/docs", web.public(docs.docs), methods=GET),
        Route("/openapi.json", web.public(docs.openapi), methods=GET),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def web_middleware(services: Callable[[], Services]) -> list[Middleware]:
    """Signed cookie sessions for the dashboard (the /v1 API never sees them)."""
    policy: CookiePolicy | None = None

    def cookie_policy() -> CookiePolicy:
        nonlocal policy
        if policy is None:
            settings = services().settings
            policy = CookiePolicy(load_session_secret(settings), settings.secure_cookies)
        return policy

    return [Middleware(SessionMiddleware, policy=cookie_policy)]
