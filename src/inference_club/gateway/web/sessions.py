"""Dashboard sessions in a signed cookie: HttpOnly, SameSite=Lax, Secure behind HTTPS."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from inference_club.gateway.asgi import Message, Receive, Scope, Send

SESSION_LIFETIME = 14 * 24 * 3600
# A session in use is signed anew at most this often, which slides its expiry forward.
REFRESH_AFTER = 24 * 3600
_SALT = "inference-club.session"


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """How the session cookie is signed and sent."""

    secret: str
    secure: bool

    @property
    def name(self) -> str:
        """``__Host-`` pins the cookie to this host and HTTPS when the gateway is public."""
        return "__Host-ic_session" if self.secure else "ic_session"


class SessionMiddleware:
    """Puts the session dict in ``scope["session"]`` and writes it back only when it changed.

    The policy comes from a callable because the secret is read when the gateway starts,
    after the application was built.
    """

    def __init__(self, app: Callable[..., Any], policy: Callable[[], CookiePolicy]) -> None:
        self.app = app
        self._policy = policy
        self._serializer: URLSafeTimedSerializer | None = None
        self._serializer_secret = ""

    def _serializer_for(self, policy: CookiePolicy) -> URLSafeTimedSerializer:
        if self._serializer is None or self._serializer_secret != policy.secret:
            self._serializer = URLSafeTimedSerializer(policy.secret, salt=_SALT)
            self._serializer_secret = policy.secret
        return self._serializer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point; anything but plain HTTP passes through untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self._policy()
        serializer = self._serializer_for(policy)
        session, signed_at = self._load(scope, policy, serializer)
        scope["session"] = session
        original = _dump(session)
        stale = signed_at is not None and time.time() - signed_at > REFRESH_AFTER

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = scope["session"]
                changed = _dump(current) != original
                if current and (changed or stale):
                    value = serializer.dumps(current)
                    _add_cookie(message, policy, value, SESSION_LIFETIME)
                elif not current and signed_at is not None:
                    _add_cookie(message, policy, "", 0)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    @staticmethod
    def _load(
        scope: Scope, policy: CookiePolicy, serializer: URLSafeTimedSerializer
    ) -> tuple[dict[str, Any], float | None]:
        raw = _cookie(scope, policy.name)
        if raw is None:
            return {}, None
        try:
            data, signed = serializer.loads(raw, max_age=SESSION_LIFETIME, return_timestamp=True)
        except BadSignature:
            # Tampered, expired or signed with an older secret: start afresh.
            return {}, 0.0
        if not isinstance(data, dict):
            return {}, 0.0
        return data, signed.timestamp()


def _dump(session: dict[str, Any]) -> str:
    return json.dumps(session, sort_keys=True, default=str)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            cookies: SimpleCookie = SimpleCookie()
            try:
                cookies.load(bytes(value).decode("latin-1"))
            except ValueError:
                continue
            if name in cookies:
                return cookies[name].value
    return None


def _add_cookie(message: Message, policy: CookiePolicy, value: str, max_age: int) -> None:
    parts = [f"{policy.name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if policy.secure:
        parts.append("Secure")
    headers = list(message.get("headers", []))
    headers.append((b"set-cookie", "; ".join(parts).encode("latin-1")))
    message["headers"] = headers
