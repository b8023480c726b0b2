"""API docs: the contract at ``/openapi.json``, pointed at this gateway, and Swagger UI."""

import functools
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from inference_club.gateway.web.context import Web

OPENAPI_FILE = Path(__file__).parent.parent / "openapi.json"
# The host the contract's examples are written for; the served copy names this gateway.
CONTRACT_ORIGIN = "https://api.inference.club"


@functools.cache
def _contract_text() -> str:
    return OPENAPI_FILE.read_text(encoding="utf-8")


def openapi_document(base_url: str) -> dict[str, Any]:
    """The contract with its server, examples and contact pointing at ``base_url``."""
    origin = base_url.rstrip("/")
    # Swapping the text keeps every schema as the contract has it (none holds a URL).
    document: dict[str, Any] = json.loads(
        _contract_text().replace(CONTRACT_ORIGIN, json.dumps(origin)[1:-1])
    )
    document["servers"] = [{"url": f"{origin}/v1", "description": "This gateway"}]
    info = document.setdefault("info", {})
    info["contact"] = {"name": "This gateway's operator", "url": f"{origin}/"}
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
