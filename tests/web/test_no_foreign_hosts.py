"""No page of the dashboard references or contacts any host but the gateway itself."""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request

from inference_club.gateway.web.context import STATIC_DIR
from inference_club.gateway.web.providers import EXAMPLE_BACKEND
from tests.web.conftest import Club, sign_in

URL = re.compile(r"""https?://[^\s"'<>)\\]+""")
# XML namespace names identify a vocabulary; nothing is ever fetched from them.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
SIGNED_IN_PAGES = [
    "/",
    "/providers",
    "/providers/status",
    "/models",
    "/models?type=llm",
    "/playground",
    "/playground?tab=speech",
    "/playground?tab=transcribe",
    "/playground?tab=image",
    "/history",
    "/history/media",
    "/usage",
    "/usage?days=90",
    "/settings/token",
    "/settings/password",
    "/admin/invites",
    "/docs",
    "/history?member=nobody",
]
SIGNED_OUT_PAGES = ["/login", "/docs", "/join/ici_not-a-real-invite"]


@pytest.fixture(scope="module")
def admin(club: Club) -> str:
    """An admin with a provider, so pages have content to show."""
    club.add_member("root", admin=True)
    club.connect_provider("root", "root-home", "fake-llm")
    return "root"


def _foreign(text: str, origin: str) -> set[str]:
    return {
        url
        for url in URL.findall(text)
        # The agent command names the member's own model server, to be run on their machine.
        if url not in NAMESPACES | {EXAMPLE_BACKEND}
        and not url.startswith(origin + "/")
        and url != origin
    }


def _visit(page: Page, path: str, origin: str) -> tuple[list[str], str]:
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)
    page.goto(path)
    # Pages whose scripts fetch after loading are given the time to do so.
    if path.startswith(("/docs", "/playground")):
        page.wait_for_load_state("networkidle")
    if path == "/docs":
        page.wait_for_selector(".swagger-ui .opblock")
        page.wait_for_load_state("networkidle")
    page.remove_listener("request", record)
    elsewhere = [
        url
        for url in requested
        if not url.startswith(origin + "/") and not url.startswith(("data:", "blob:"))
    ]
    return elsewhere, page.content()


def test_pages_request_and_reference_only_the_gateway(
    club: Club, admin: str, new_page: Callable[[], Page]
) -> None:
    """Every page, signed in or out, loads everything from the gateway and links nowhere else."""
    signed_in = new_page()
    sign_in(signed_in, admin)
    signed_in.goto("/providers")
    signed_in.fill("input[name=name]", "root-spare")
    signed_in.click("button:has-text('Add a provider')")
    results = {"provider added": (_foreign(signed_in.content(), club.url), signed_in.content())}
    pages = [(signed_in, path) for path in SIGNED_IN_PAGES]
    pages += [(new_page(), path) for path in SIGNED_OUT_PAGES]

    problems: dict[str, object] = {}
    for page, path in pages:
        elsewhere, html = _visit(page, path, club.url)
        if elsewhere:
            problems[f"{path} requested"] = elsewhere
        if found := _foreign(html, club.url):
            problems[f"{path} references"] = found
    problems.update({k: v[0] for k, v in results.items() if v[0]})

    assert problems == {}


def test_every_page_carries_a_same_origin_content_security_policy(club: Club, admin: str) -> None:
    """The browser itself is told to refuse anything from another host."""
    response = httpx.get(f"{club.url}/login")
    policy = response.headers["content-security-policy"]

    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "https:" not in policy
    assert "http:" not in policy


def test_static_files_and_the_api_document_name_no_other_host(club: Club) -> None:
    """Our own scripts and styles, and vendored styles, point at no other host."""
    problems: dict[str, set[str]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file() or path.suffix not in {".js", ".css", ".svg", ".html"}:
            continue
        relative = path.relative_to(STATIC_DIR).as_posix()
        served = httpx.get(f"{club.url}/static/{relative}")
        assert served.status_code == 200, relative
        if relative.startswith("vendor/"):
            # Vendored bundles mention URLs in comments and messages; what they load is
            # checked in the browser above. Stylesheets must still fetch nothing from afar.
            if path.suffix == ".css" and re.search(r"url\(\s*['\"]?https?:", served.text):
                problems[relative] = {"url(http...)"}
            continue
        if found := _foreign(served.text, club.url):
            problems[relative] = found
    document = httpx.get(f"{club.url}/openapi.json").text
    if found := _foreign(document, club.url):
        problems["/openapi.json"] = found

    assert problems == {}
    assert urlsplit(club.url).hostname == "127.0.0.1"
