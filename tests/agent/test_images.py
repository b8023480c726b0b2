"""Image replies: URLs on the home server are inlined as base64, anything else is left alone."""

import base64
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from inference_club.agent import BackendSettings
from inference_club.agent.backend_client import BackendClient
from inference_club.agent.images import carries_image_urls, inline_image_urls

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


@pytest.fixture
async def home() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """A home image server on 127.0.0.1 that serves one file and records every fetch."""
    fetched: list[str] = []

    async def picture(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/v1/files/a.png", picture)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, fetched
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[BackendClient]:
    """The agent's client for its model servers."""
    client = BackendClient(connect_timeout=2.0)
    yield client
    client.close()


def backend_of(server: TestServer) -> BackendSettings:
    return BackendSettings(str(server.make_url("/v1")))


async def test_relative_and_same_origin_urls_are_inlined(
    home: tuple[TestServer, list[str]],
    http: BackendClient,
) -> None:
    """A path and an absolute URL on the backend's origin both become b64_json."""
    server, fetched = home
    reply = {
        "created": 1,
        "data": [
            {"url": "/v1/files/a.png", "revised_prompt": "kept"},
            {"url": str(server.make_url("/v1/files/a.png"))},
        ],
    }
    body = await inline_image_urls(orjson.dumps(reply), backend_of(server), http, 5)
    data = orjson.loads(body)["data"]
    assert [base64.b64decode(item["b64_json"]) for item in data] == [PNG, PNG]
    assert all("url" not in item for item in data)
    assert data[0]["revised_prompt"] == "kept"
    assert fetched == ["/v1/files/a.png", "/v1/files/a.png"]


async def test_urls_elsewhere_are_never_fetched(
    home: tuple[TestServer, list[str]], http: BackendClient
) -> None:
    """A URL on another origin is left as it is, without a request to it."""
    server, fetched = home
    other_port = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else 1}/x.png"
    reply = orjson.dumps({"data": [{"url": other_port}, {"url": "file:///etc/passwd"}]})
    body = await inline_image_urls(reply, backend_of(server), http, 5)
    assert body == reply
    assert fetched == []


async def test_data_urls_are_decoded_without_a_fetch(
    home: tuple[TestServer, list[str]], http: BackendClient
) -> None:
    """A data: URL's base64 payload becomes b64_json."""
    server, fetched = home
    encoded = base64.b64encode(PNG).decode()
    reply = orjson.dumps({"data": [{"url": f"data:image/png;base64,{encoded}"}]})
    body = await inline_image_urls(reply, backend_of(server), http, 5)
    assert orjson.loads(body)["data"] == [{"b64_json": encoded}]
    assert fetched == []


async def test_replies_without_urls_pass_unchanged(
    home: tuple[TestServer, list[str]], http: BackendClient
) -> None:
    """Bodies that are not JSON, or already inline, are relayed byte for byte."""
    server, _fetched = home
    for reply in (b"not json", b'{"data": [{"b64_json": "AAAA", "url": "/v1/files/a.png"}]}'):
        assert await inline_image_urls(reply, backend_of(server), http, 5) == reply


def test_only_successful_json_image_replies_are_rewritten() -> None:
    """Other paths, error statuses and non-JSON bodies are streamed as they are."""
    assert carries_image_urls("/images/generations", 200, "application/json; charset=utf-8")
    assert carries_image_urls("/images/edits", 200, "application/json")
    assert not carries_image_urls("/chat/completions", 200, "application/json")
    assert not carries_image_urls("/images/generations", 400, "application/json")
    assert not carries_image_urls("/images/generations", 200, "image/png")
