"""Signing in and out, joining with an invite, and changing one's password."""

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.context import Web, form_text, local_path
from inference_club.gateway.web.playground import SESSION_PLAYGROUND_KEY, drop_playground_key
from inference_club.store import AlreadyExists, InvalidValue, NotFound
from inference_club.store.accounts import MIN_PASSWORD_LENGTH, Account

_WRONG = "Wrong name or password."
_BAD_INVITE = "This invite link cannot be used: it was already used, has expired, or is mistyped."


async def sign_in_form(web: Web, request: Request) -> Response:
    """``GET /login``."""
    if await web.account(request) is not None:
        return web.redirect(local_path(request.query_params.get("next")))
    return _login_page(web, request, next_path=request.query_params.get("next"))


async def sign_in(web: Web, request: Request, form: FormData) -> Response:
    """``POST /login``: check the password, throttling repeated failures."""
    name = form_text(form, "username").strip()
    password = form_text(form, "password")
    next_path = form_text(form, "next")
    address = request.client.host if request.client else None
    wait = web.throttle.retry_after(name, address)
    if wait is not None:
        return _login_page(
            web,
            request,
            next_path=next_path,
            name=name,
            error=f"Too many failed sign-ins. Try again in {wait} s.",
            status=429,
            headers={"retry-after": str(wait)},
        )
    account = None
    if name and password:
        account = await web.services().store.check_user_password(name, password)
    if account is None:
        web.throttle.failed(name, address)
        return _login_page(web, request, next_path=next_path, name=name, error=_WRONG, status=401)
    web.throttle.succeeded(name)
    web.sign_in(request, account)
    return web.redirect(local_path(next_path))


def _login_page(
    web: Web,
    request: Request,
    *,
    next_path: str | None,
    name: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return web.render(
        request,
        "login.html",
        {"next": local_path(next_path), "username": name, "error": error},
        status=status,
        headers=headers,
    )


async def sign_out(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /logout``: end the session and revoke its playground key."""
    del form
    await drop_playground_key(web, request, account)
    request.session.clear()
    return web.redirect("/login")


async def join_form(web: Web, request: Request) -> Response:
    """``GET /join/{token}``: the form to pick a name and password."""
    invite = await web.services().store.find_invite(str(request.path_params["token"]))
    if invite is None:
        return web.error(request, 404, _BAD_INVITE)
    return _join_page(web, request, admin=invite.is_admin)


async def join(web: Web, request: Request, form: FormData) -> Response:
    """``POST /join/{token}``: create the member and sign them in."""
    store = web.services().store
    token = str(request.path_params["token"])
    invite = await store.find_invite(token)
    if invite is None:
        return web.error(request, 404, _BAD_INVITE)
    name = form_text(form, "username").strip()
    password = form_text(form, "password")
    if password != form_text(form, "confirm"):
        return _join_page(web, request, invite.is_admin, name, "The two passwords differ.")
    try:
        user = await store.accept_invite(token, name, password)
    except (AlreadyExists, InvalidValue) as error:
        return _join_page(web, request, invite.is_admin, name, str(error).capitalize() + ".")
    except NotFound:
        return web.error(request, 404, _BAD_INVITE)
    account = await store.get_account(user.id)
    if account is None:  # pragma: no cover - the user was just created
        return web.redirect("/login")
    web.sign_in(request, account)
    return web.redirect("/", flash=f"Welcome to the club, {user.name}!", request=request)


def _join_page(
    web: Web, request: Request, admin: bool, name: str = "", error: str | None = None
) -> Response:
    return web.render(
        request,
        "join.html",
        {
            "admin": admin,
            "username": name,
            "error": error,
            "min_password": MIN_PASSWORD_LENGTH,
        },
        status=400 if error else 200,
        # The page's URL holds the invite: never send it on as a referrer.
        headers={"referrer-policy": "no-referrer"},
    )


async def password_form(web: Web, request: Request, account: Account) -> Response:
    """``GET /settings/password``."""
    return _password_page(web, request, account)


async def change_password(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /settings/password``: needs the current password; ends other sessions."""
    store = web.services().store
    address = request.client.host if request.client else None
    wait = web.throttle.retry_after(account.user.name, address)
    if wait is not None:
        return _password_page(
            web, request, account, f"Too many failed attempts. Try again in {wait} s.", 429
        )
    current = form_text(form, "current")
    new = form_text(form, "password")
    if await store.check_user_password(account.user.name, current) is None:
        web.throttle.failed(account.user.name, address)
        return _password_page(web, request, account, "The current password is wrong.", 400)
    if new != form_text(form, "confirm"):
        return _password_page(web, request, account, "The two new passwords differ.", 400)
    try:
        await store.set_password(account.user.name, new)
    except InvalidValue as error:
        return _password_page(web, request, account, str(error).capitalize() + ".", 400)
    renewed = await store.get_account(account.user.id)
    if renewed is not None:
        playground = request.session.get(SESSION_PLAYGROUND_KEY)
        web.sign_in(request, renewed)
        if playground is not None:
            request.session[SESSION_PLAYGROUND_KEY] = playground
    return web.redirect(
        "/settings/password",
        flash="Password changed. Your other sessions were signed out.",
        request=request,
    )


def _password_page(
    web: Web, request: Request, account: Account, error: str | None = None, status: int = 200
) -> Response:
    return web.render(
        request,
        "password.html",
        {"error": error, "min_password": MIN_PASSWORD_LENGTH, "section": "settings"},
        account=account,
        status=status,
    )
