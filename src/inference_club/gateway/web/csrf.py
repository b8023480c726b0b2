"""CSRF protection: a random token per session, required on every state-changing request."""

import hmac
import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SESSION_KEY = "csrf"


def csrf_token(session: dict[str, Any]) -> str:
    """The session's token, made on first use."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def csrf_valid(request: Request, form: FormData) -> bool:
    """Whether the form field or the header (htmx, fetch) carries the session's token."""
    expected = request.session.get(_SESSION_KEY)
    if not isinstance(expected, str) or not expected:
        return False
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
