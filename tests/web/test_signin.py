"""Accounts in the browser: sign in and out, refusals, throttling, CSRF, invites, passwords."""

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page

from inference_club.gateway.web.throttle import FAILURES_PER_ADDRESS
from tests.web.conftest import PASSWORD, Club, sign_in


@pytest.fixture(scope="module")
def members(club: Club) -> Club:
    """An admin and two members."""
    club.add_member("root", admin=True)
    club.add_member("alice")
    club.add_member("bob")
    return club


def test_member_signs_in_and_out(members: Club, new_page: Callable[[], Page]) -> None:
    """The right password opens the dashboard; signing out closes it again."""
    page = new_page()
    page.goto("/providers")
    assert "/login?next=/providers" in page.url

    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/providers")
    assert page.inner_text(".who") == "alice"
    cookie = next(c for c in page.context.cookies() if c["name"] == "ic_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto("/settings/token")
    assert "/login" in page.url


def test_wrong_password_is_refused(members: Club, new_page: Callable[[], Page]) -> None:
    """A wrong password answers 401 with a message and signs nobody in."""
    page = new_page()
    page.goto("/login")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "not the password")
    with page.expect_response("**/login") as answer:
        page.click("button[type=submit]")

    assert answer.value.status == 401
    assert page.inner_text(".error") == "Wrong name or password."
    page.goto("/")
    assert "/login" in page.url


def test_repeated_failures_for_a_name_are_throttled(members: Club) -> None:
    """Five failures for one name in a minute make the next try a 429, even a right one."""
    members.add_member("erin")
    with httpx.Client(base_url=members.url) as client:
        token = _csrf(client)
        statuses = [
            client.post(
                "/login", data={"username": "erin", "password": "guess", "csrf_token": token}
            ).status_code
            for _ in range(5)
        ]
        blocked = client.post(
            "/login", data={"username": "erin", "password": PASSWORD, "csrf_token": token}
        )
        other = client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )

    assert statuses == [401] * 5
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in blocked.text
    # Another name from the same address is not locked out by them.
    assert other.status_code == 303


def test_failures_count_against_the_address_a_local_proxy_forwards(members: Club) -> None:
    """Behind a reverse proxy on the same machine, sign-in failures are counted per client
    address from X-Forwarded-For, so one client's guessing does not lock out the others."""
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    neighbour = {"X-Forwarded-For": "203.0.113.8"}
    with httpx.Client(base_url=members.url) as client:
        token = _csrf(client)

        def attempt(name: str, headers: dict[str, str]) -> int:
            data = {"username": name, "password": "guess", "csrf_token": token}
            return client.post("/login", data=data, headers=headers).status_code

        statuses = [attempt(f"nobody{n}", guesser) for n in range(FAILURES_PER_ADDRESS)]
        blocked = attempt("nobody-more", guesser)
        other = attempt("nobody-else", neighbour)

    assert statuses == [401] * FAILURES_PER_ADDRESS
    assert blocked == 429
    assert other == 401


def test_forms_without_the_csrf_token_are_refused(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """A signed-in POST without the token, or with a wrong one, is a 403 that changes nothing."""
    page = new_page()
    sign_in(page, "bob")

    missing = page.request.post("/settings/token", form={"name": "sneaky"})
    wrong = page.request.post("/settings/token", form={"name": "sneaky", "csrf_token": "x" * 43})
    token = page.get_attribute("input[name=csrf_token]", "value")
    assert token
    by_header = page.request.post(
        "/settings/token", form={"name": "viaheader"}, headers={"X-CSRF-Token": token}
    )

    assert missing.status == 403
    assert wrong.status == 403
    assert by_header.status == 201
    page.goto("/settings/token")
    names = page.locator("#keys tbody tr td:nth-child(2)").all_inner_texts()
    assert "viaheader" in names
    assert "sneaky" not in names
    with httpx.Client(base_url=members.url) as client:
        _csrf(client)
        refused = client.post("/login", data={"username": "bob", "password": PASSWORD})
    assert refused.status_code == 403


def test_invite_link_lets_one_person_join(members: Club, new_page: Callable[[], Page]) -> None:
    """An admin's invite link makes a new member once; members cannot open the admin page."""
    admin = new_page()
    sign_in(admin, "root")
    admin.goto("/admin/invites")
    admin.click("text=Create invite link")
    link = admin.inner_text("#invite-url")
    assert link.startswith(f"{members.url}/join/ici_")

    newcomer = new_page()
    newcomer.goto(link)
    newcomer.fill("input[name=username]", "carol")
    newcomer.fill("input[name=password]", "carol's password")
    newcomer.fill("input[name=confirm]", "carol's password")
    newcomer.click("button[type=submit]")
    newcomer.wait_for_url("**/")
    assert newcomer.inner_text("h1") == "Hello, carol"
    assert "Admin" not in newcomer.inner_text(".mainnav")

    again = new_page().goto(link)
    assert again is not None
    assert again.status == 404
    forbidden = newcomer.goto("/admin/invites")
    assert forbidden is not None
    assert forbidden.status == 403
    admin.reload()
    assert "used by carol" in admin.inner_text("table")


def test_changing_the_password_signs_out_other_sessions(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """After a password change the old one fails, the new one works, other browsers sign out."""
    members.add_member("dave")
    here, elsewhere = new_page(), new_page()
    sign_in(here, "dave")
    sign_in(elsewhere, "dave")

    here.goto("/settings/password")
    here.fill("input[name=current]", PASSWORD)
    here.fill("input[name=password]", "a brand new password")
    here.fill("input[name=confirm]", "a brand new password")
    here.click("button[type=submit]:has-text('Change password')")

    assert "Password changed" in here.inner_text(".notice")
    here.goto("/settings/token")
    assert here.url.endswith("/settings/token")
    elsewhere.goto("/settings/token")
    assert "/login" in elsewhere.url
    sign_in(new_page(), "dave", "a brand new password")


def _csrf(client: httpx.Client) -> str:
    page = client.get("/login")
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]
