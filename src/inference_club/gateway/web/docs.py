"""API docs: the contract at ``/openapi.json``, pointed at this gateway, and Swagger UI."""

import copy
import functools
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from inference_club.gateway.web.context import Web

OPENAPI_FILE = Path(__file__).parent.parent / "openapi.json"
# The base URL the contract is written for; the served copy names this gateway instead.
CONTRACT_BASE_URL = "https://api.inference.club/v1"


@functools.cache
def _contract() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
    return document


def openapi_document(base_url: str) -> dict[str, Any]:
    """The contract with its server, examples and contact pointing at ``base_url``."""
    document = copy.deepcopy(_contract())
    api_url = base_url.rstrip("/") + "/v1"
    document["servers"] = [{"url": api_url, "description": "This gateway"}]
    info = document.setdefault("info", {})
    if isinstance(info.get("description"), str):
        info["description"] = info["description"].replace(CONTRACT_BASE_URL, api_url)
    info["contact"] = {"name": "This gateway's operator", "url": base_url.rstrip("/") + "/"}
    return document


async def openapi(web: Web, request: Request) -> Response:
    """``GET /openapi.json``."""
    del request
    document = openapi_document(web.services().settings.base_url)
    return JSONResponse(document, headers={"cache-control": "no-cache"})


async def docs(web: Web, request: Request) -> Response:
    """``GET /docs``: Swagger UI, served from this gateway, with Authorize and Try it out."""
    return web.render(
        request,
        "docs.html",
        {"section": "docs"},
        account=await web.account(request),
    )
