"""What every dashboard handler shares: services, templates, the signed-in member, CSRF."""

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from inference_club import __version__
from inference_club.gateway.services import Services
from inference_club.gateway.web.csrf import CSRF_FIELD, csrf_token, csrf_valid
from inference_club.gateway.web.formatting import FILTERS
from inference_club.gateway.web.throttle import LoginThrottle
from inference_club.store.accounts import Account

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
# A dashboard form is a few fields; anything bigger is not one of ours.
MAX_FORM_BYTES = 64 * 1024
SESSION_USER = "uid"
SESSION_STAMP = "stamp"
_FLASH = "flash"

# Only this gateway: no CDN, no fonts, no beacons. Swagger UI needs inline styles and data:
# images; the playground plays and shows what it made through blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Pages show keys, tokens and invites: never keep them in a shared cache or history.
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
}

Endpoint = Callable[[Request], Awaitable[Response]]
PublicPage = Callable[["Web", Request], Awaitable[Response]]
PublicAction = Callable[["Web", Request, FormData], Awaitable[Response]]
MemberPage = Callable[["Web", Request, Account], Awaitable[Response]]
MemberAction = Callable[["Web", Request, Account, FormData], Awaitable[Response]]


def _templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(FILTERS)
    environment.globals["version"] = __version__
    environment.globals["csrf_field"] = CSRF_FIELD
    return Jinja2Templates(env=environment)


@dataclass
class Web:
    """The dashboard's shared state; handlers receive it first."""

    services: Callable[[], Services]
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Jinja2Templates = field(default_factory=_templates)

    # -- responses ---------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        account: Account | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        fragment: bool = False,
    ) -> Response:
        """A page (or an htmx fragment) with the security headers every page carries."""
        values: dict[str, Any] = {
            "account": account,
            "csrf_token": csrf_token(request.session),
            "base_url": self.services().settings.base_url,
            # A fragment polled in the background must not swallow the page's notice.
            "flash": None if fragment else request.session.pop(_FLASH, None),
            "path": request.url.path,
        }
        values.update(context or {})
        return self.templates.TemplateResponse(
            request,
            template,
            values,
            status_code=status,
            headers={**PAGE_HEADERS, **(headers or {})},
        )

    def error(
        self,
        request: Request,
        status: int,
        message: str,
        *,
        account: Account | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An error page that says what went wrong in words."""
        return self.render(
            request,
            "error.html",
            {"status": status, "message": message},
            account=account,
            status=status,
            headers=headers,
        )

    @staticmethod
    def redirect(url: str, *, flash: str | None = None, request: Request | None = None) -> Response:
        """303 to ``url`` (so a reload does not post again), with an optional notice."""
        if flash is not None and request is not None:
            request.session[_FLASH] = flash
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})

    # -- who is asking -----------------------------------------------------------------------

    async def account(self, request: Request) -> Account | None:
        """The signed-in member, or ``None`` (also when their password changed since)."""
        user_id = request.session.get(SESSION_USER)
        if not isinstance(user_id, int):
            return None
        account = await self.services().store.get_account(user_id)
        if account is None or account.session_stamp != request.session.get(SESSION_STAMP):
            request.session.clear()
            return None
        return account

    def sign_in(self, request: Request, account: Account) -> None:
        """Start a new session for ``account`` (a new CSRF token too: no fixation)."""
        request.session.clear()
        request.session[SESSION_USER] = account.user.id
        request.session[SESSION_STAMP] = account.session_stamp
        csrf_token(request.session)

    # -- endpoint wrappers -------------------------------------------------------------------

    def public(self, handler: PublicPage) -> Endpoint:
        """A page anyone may open."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            return await handler(self, request)

        return endpoint

    def public_action(self, handler: PublicAction) -> Endpoint:
        """A form anyone may post, with a valid CSRF token."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            form = await self._checked_form(request)
            if isinstance(form, Response):
                return form
            return await handler(self, request, form)

        return endpoint

    def page(self, handler: MemberPage) -> Endpoint:
        """A page for signed-in members; others are sent to sign in first."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            account = await self.account(request)
            if account is None:
                return _to_sign_in(request)
            return await handler(self, request, account)

        return endpoint

    def action(self, handler: MemberAction) -> Endpoint:
        """A form a signed-in member posts, with a valid CSRF token."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            account = await self.account(request)
            if account is None:
                return _to_sign_in(request)
            form = await self._checked_form(request, account)
            if isinstance(form, Response):
                return form
            return await handler(self, request, account, form)

        return endpoint

    def admin_page(self, handler: MemberPage) -> Endpoint:
        """A page only admins may open."""

        async def only_admins(web: Web, request: Request, account: Account) -> Response:
            if not account.user.is_admin:
                return web.error(request, 403, "Only admins may open this page.", account=account)
            return await handler(web, request, account)

        return self.page(functools.wraps(handler)(only_admins))

    def admin_action(self, handler: MemberAction) -> Endpoint:
        """A form only admins may post."""

        async def only_admins(
            web: Web, request: Request, account: Account, form: FormData
        ) -> Response:
            if not account.user.is_admin:
                return web.error(request, 403, "Only admins may do this.", account=account)
            return await handler(web, request, account, form)

        return self.action(functools.wraps(handler)(only_admins))

    async def _checked_form(
        self, request: Request, account: Account | None = None
    ) -> FormData | Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            return self.error(request, 413, "This form is too large.", account=account)
        form = await request.form(max_files=0, max_fields=200)
        if not csrf_valid(request, form):
            return self.error(
                request,
                403,
                "This form expired or did not come from this site. Reload the page and try again.",
                account=account,
            )
        return form


def _to_sign_in(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = "/login?next=" + quote(target, safe="/")
    if request.headers.get("hx-request"):
        # htmx swaps fragments; a redirect would paste the sign-in page into one.
        return Response(status_code=401, headers={"hx-redirect": location})
    return RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def form_text(form: FormData, name: str) -> str:
    """A form field as text ('' when missing or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""
