"""The demo member, its API key, password and provider: made on the first run, then reused.

Keys, tokens and passwords are stored only as hashes, so the demo keeps its own plaintext
copies in files readable by their owner alone, inside the data directory.
"""

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from inference_club.demo.lineup import PROVIDER_NAME
from inference_club.store import NotFound, Store, User, default_database_url

DEMO_USER = "demo"
API_KEY_FILE = "api-key"
PROVIDER_TOKEN_FILE = "provider-token"  # noqa: S105 - a file name, not a token
PASSWORD_FILE = "dashboard-password"  # noqa: S105 - a file name, not a password
# Enough spare names for a provider whose token file was lost several times.
MAX_PROVIDER_NAMES = 100


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """What the demo needs to run and to tell: the member's secrets and its provider's name."""

    api_key: str = field(repr=False)
    provider_token: str = field(repr=False)
    provider_name: str
    api_key_path: Path
    # None once the member chose a password of their own: the demo never overwrites it.
    dashboard_password: str | None = field(repr=False)
    # True on the first run in a data directory.
    created_user: bool


def ensure_credentials(data_dir: Path) -> DemoCredentials:
    """The demo member, key and provider in ``data_dir``'s database, created where missing.

    A key or token whose file is gone, or that no longer works (revoked), is replaced.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_ensure_credentials(data_dir))


async def _ensure_credentials(data_dir: Path) -> DemoCredentials:
    store = await Store.open(default_database_url(data_dir))
    try:
        user, created_user = await _ensure_user(store)
        api_key = await _ensure_api_key(store, data_dir / API_KEY_FILE)
        provider_name, token = await _ensure_provider(store, data_dir / PROVIDER_TOKEN_FILE)
        password = await _ensure_password(store, user, data_dir / PASSWORD_FILE)
    finally:
        await store.close()
    return DemoCredentials(
        api_key=api_key,
        provider_token=token,
        provider_name=provider_name,
        api_key_path=data_dir / API_KEY_FILE,
        dashboard_password=password,
        created_user=created_user,
    )


async def _ensure_user(store: Store) -> tuple[User, bool]:
    try:
        return await store.get_user(DEMO_USER), False
    except NotFound:
        return await store.add_user(DEMO_USER, is_admin=True), True


async def _ensure_api_key(store: Store, path: Path) -> str:
    saved = read_secret(path)
    if saved is not None:
        identity = await store.authenticate_api_key(saved)
        if identity is not None and identity.user_name == DEMO_USER:
            return saved
    _key, secret = await store.create_api_key(DEMO_USER, "demo")
    write_secret(path, secret)
    return secret


async def _ensure_provider(store: Store, path: Path) -> tuple[str, str]:
    saved = read_secret(path)
    if saved is not None:
        provider = await store.authenticate_provider(saved)
        if provider is not None and provider.owner_name == DEMO_USER:
            return provider.name, saved
    # A token lost with its file cannot be recovered; a new provider under the next free name.
    taken = {provider.name for provider in await store.list_providers()}
    name = next(candidate for candidate in _provider_names() if candidate not in taken)
    _provider, token = await store.add_provider(DEMO_USER, name)
    write_secret(path, token)
    return name, token


async def _ensure_password(store: Store, user: User, path: Path) -> str | None:
    saved = read_secret(path)
    if saved is not None:
        if await store.check_user_password(user.name, saved) is not None:
            return saved
        return None
    account = await store.get_account(user.id)
    if account is not None and account.has_password:
        return None
    password = secrets.token_urlsafe(12)
    await store.set_password(user.name, password)
    write_secret(path, password)
    return password


def _provider_names() -> list[str]:
    return [PROVIDER_NAME] + [f"{PROVIDER_NAME}-{n}" for n in range(2, MAX_PROVIDER_NAMES)]


def read_secret(path: Path) -> str | None:
    """The secret saved in ``path``, or None when there is none."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return secret or None


def write_secret(path: Path, secret: str) -> None:
    """Save ``secret`` in ``path``, readable and writable by its owner only (0600 on POSIX)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    # A file that existed before keeps its old mode through os.open; tighten it.
    os.chmod(path, 0o600)
