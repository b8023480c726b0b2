"""API-key authentication for /v1: the bearer token of a request, checked against the store."""

from inference_club.gateway.asgi import Scope, header
from inference_club.gateway.errors import AuthenticationFailed, NotAuthenticated
from inference_club.store import KeyIdentity, Store


async def authenticate(scope: Scope, store: Store) -> KeyIdentity:
    """The identity behind the request's API key; 401 when missing, unknown or revoked."""
    raw = header(scope, b"authorization")
    if raw is None:
        raise NotAuthenticated
    token = bearer_token(raw)
    if token is None:
        raise AuthenticationFailed
    identity = await store.authenticate_api_key(token)
    if identity is None:
        raise AuthenticationFailed
    return identity


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
