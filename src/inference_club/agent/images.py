"""Images a backend only links to (a URL on the home machine) are fetched and sent inline.

The gateway cannot reach the home machine, so an image reply's ``data[].url`` is replaced by
``b64_json`` before it crosses the tunnel. Only URLs on the backend's own origin (or ``data:``
URLs) are fetched: a reply never makes the agent fetch anything else.
"""

import asyncio
import base64
import binascii
import logging
from urllib.parse import urljoin, urlsplit

import orjson

from inference_club.agent.backend_client import BackendClient, BackendError, BackendResponse
from inference_club.agent.settings import BackendSettings

logger = logging.getLogger(__name__)

IMAGE_PATHS = frozenset({"/images/generations", "/images/edits"})
# An image reply read whole to rewrite it; larger ones pass through untouched.
MAX_IMAGE_REPLY = 64 * 1024 * 1024
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_DATA_URL_PREFIX = "data:image/"


def carries_image_urls(path: str, status: int, content_type: str) -> bool:
    """Whether a backend's response may hold image URLs to inline."""
    return path in IMAGE_PATHS and status == 200 and "json" in content_type.lower()


async def inline_image_urls(
    body: bytes, backend: BackendSettings, http: BackendClient, timeout: float
) -> bytes:
    """The reply with every fetchable ``data[].url`` turned into ``b64_json``."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    items = document.get("data") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return body
    changed = False
    for item in items:
        if not isinstance(item, dict) or isinstance(item.get("b64_json"), str):
            continue
        url = item.get("url")
        if not isinstance(url, str):
            continue
        image = await _image_bytes(url, backend, http, timeout)
        if image is not None:
            item["b64_json"] = base64.b64encode(image).decode("ascii")
            del item["url"]
            changed = True
    return orjson.dumps(document) if changed else body


async def _image_bytes(
    url: str, backend: BackendSettings, http: BackendClient, timeout: float
) -> bytes | None:
    if url.startswith(_DATA_URL_PREFIX):
        return _from_data_url(url)
    absolute = urljoin(backend.url + "/", url)
    if _origin(absolute) != _origin(backend.url):
        logger.warning("image URL not on the backend's origin; left as it is")
        return None
    try:
        async with asyncio.timeout(timeout):
            response = await http.request("GET", absolute, backend.auth_headers().items())
            try:
                if response.status != 200:
                    logger.warning("image fetch failed", extra={"status": response.status})
                    return None
                return await _bounded_read(response)
            finally:
                response.release()
    except (BackendError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning("image fetch failed", extra={"error": type(exc).__name__})
        return None


async def _bounded_read(response: BackendResponse) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.read_chunk():
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            logger.warning("image too large to inline", extra={"limit": MAX_IMAGE_BYTES})
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _from_data_url(url: str) -> bytes | None:
    header, separator, payload = url.partition(",")
    if not separator or not header.endswith(";base64"):
        return None
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ("", "", None)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port or default)
