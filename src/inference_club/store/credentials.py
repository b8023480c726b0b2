"""Secrets handed out once and kept only as hashes: API keys, provider tokens; asset ids."""

import hashlib
import hmac
import math
import re
import secrets

from inference_club.store.errors import InvalidName

API_KEY_PREFIX = "ic_"
PROVIDER_TOKEN_PREFIX = "icp_"  # noqa: S105 (a public marker, not a secret)
# Enough to tell keys apart in a listing while revealing only ~54 of the key's 256 random bits.
DISPLAY_PREFIX_LENGTH = 12
_SECRET_BYTES = 32
_ASSET_ID_BYTES = 24
# The length of every API key handed out: the prefix and 32 bytes in unpadded base64.
API_KEY_LENGTH = len(API_KEY_PREFIX) + math.ceil(_SECRET_BYTES * 4 / 3)

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def new_api_key() -> str:
    """A fresh API key: ``ic_`` and 32 random bytes, URL-safe."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def new_provider_token() -> str:
    """A fresh provider token: ``icp_`` and 32 random bytes, URL-safe."""
    return PROVIDER_TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def new_asset_id() -> str:
    """An unguessable asset id (192 random bits), safe in a URL path."""
    return secrets.token_urlsafe(_ASSET_ID_BYTES)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret; a fast hash is right because the secrets are high-entropy."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The part of a secret that may be shown in listings to identify it."""
    return secret[:DISPLAY_PREFIX_LENGTH]


def same_hash(stored: str, computed: str) -> bool:
    """Constant-time equality of two hashes."""
    return hmac.compare_digest(stored.encode(), computed.encode())


def check_name(name: str, what: str) -> str:
    """``name`` if it is 1-64 characters of ``[A-Za-z0-9_.-]``, else :class:`InvalidName`."""
    if not _NAME.fullmatch(name):
        raise InvalidName(
            f"invalid {what} name {name[:80]!r}: use 1-64 letters, digits, '_', '.' or '-'"
        )
    return name
