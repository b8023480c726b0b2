"""Session cookies: signed, HttpOnly, SameSite=Lax, Secure behind HTTPS, secret kept on disk."""

import asyncio
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from inference_club.gateway import GatewaySettings
from inference_club.gateway.app import create_app
from inference_club.gateway.web.secret import SECRET_FILE, load_session_secret
from inference_club.store import Store, default_database_url

PASSWORD = "a good password"


def _member(data_dir: Path, name: str = "alice") -> None:
    async def add() -> None:
        async with await Store.open(default_database_url(data_dir)) as store:
            await store.add_user(name)
            await store.set_password(name, PASSWORD)

    asyncio.run(add())


def _sign_in(client: TestClient, name: str = "alice") -> None:
    page = client.get("/login").text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    token = page[start : page.index('"', start)]
    response = client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303


def test_cookie_is_signed_http_only_and_same_site_lax(tmp_path: Path) -> None:
    """Over plain HTTP the cookie is HttpOnly and SameSite=Lax, and is not marked Secure."""
    settings = GatewaySettings(data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        header = client.get("/login").headers["set-cookie"]

    assert header.startswith("ic_session=")
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header


def test_https_public_url_makes_the_cookie_secure(tmp_path: Path) -> None:
    """Behind an https public URL the cookie is Secure and pinned to the host (__Host-)."""
    settings = GatewaySettings(data_dir=tmp_path, public_url="https://club.example.org")
    with TestClient(create_app(settings)) as client:
        header = client.get("/login").headers["set-cookie"]

    assert header.startswith("__Host-ic_session=")
    assert "; Secure" in header
    assert "Path=/" in header


def test_tampered_cookie_is_a_signed_out_session(tmp_path: Path) -> None:
    """Changing one character of a signed-in cookie signs the browser out."""
    _member(tmp_path)
    with TestClient(create_app(GatewaySettings(data_dir=tmp_path))) as client:
        _sign_in(client)
        assert client.get("/", follow_redirects=False).status_code == 200
        value = client.cookies["ic_session"]
        tampered = value[:5] + ("A" if value[5] != "A" else "B") + value[6:]
        client.cookies.clear()
        client.cookies.set("ic_session", tampered)

        response = client.get("/", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"


def test_secret_file_is_private_and_keeps_sessions_across_restarts(tmp_path: Path) -> None:
    """The generated secret is 0600 and reused, so a session outlives a gateway restart."""
    _member(tmp_path)
    settings = GatewaySettings(data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        _sign_in(client)
        cookie = client.cookies["ic_session"]
    secret_path = tmp_path / SECRET_FILE
    mode = stat.S_IMODE(secret_path.stat().st_mode)
    secret = secret_path.read_text()

    with TestClient(create_app(settings), cookies={"ic_session": cookie}) as client:
        response = client.get("/", follow_redirects=False)

    assert mode == 0o600
    assert response.status_code == 200
    assert secret_path.read_text() == secret
    assert len(secret.strip()) >= 32


def test_configured_secret_wins_and_must_be_long(tmp_path: Path) -> None:
    """A configured secret is used as is; a short one is refused at start; no file is written."""
    long_secret = "s" * 40

    assert load_session_secret(GatewaySettings(data_dir=tmp_path, session_secret=long_secret)) == (
        long_secret
    )
    with pytest.raises(ValueError, match="at least 32"):
        GatewaySettings(data_dir=tmp_path, session_secret="short")
    assert not (tmp_path / SECRET_FILE).exists()


def test_htmx_fragment_without_session_asks_for_a_redirect(tmp_path: Path) -> None:
    """A signed-out htmx poll gets 401 with HX-Redirect rather than a login page in a fragment."""
    with TestClient(create_app(GatewaySettings(data_dir=tmp_path))) as client:
        response = client.get(
            "/providers/status", headers={"HX-Request": "true"}, follow_redirects=False
        )

    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?next=/providers/status"
