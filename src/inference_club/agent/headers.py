"""Which HTTP headers cross the agent, each way, and which stop at it."""

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

from inference_club.agent.settings import BackendSettings

Headers = tuple[tuple[str, str], ...]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The agent sets its own Host, and a backend gets its own key, never a credential from upstream.
_DROPPED_REQUEST_HEADERS = _HOP_BY_HOP | {"host", "authorization"}
# The gateway frames the body itself, so a length from the backend would only mislead it.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {"content-length"}


def request_headers(headers: Headers, backend: BackendSettings) -> CIMultiDict[str]:
    """The headers to send the backend: the client's, less hop-by-hop ones, plus its own key."""
    dropped = _DROPPED_REQUEST_HEADERS
    named = [value for name, value in headers if name.lower() == "connection"]
    if named:
        dropped = dropped | _connection_tokens(named)
    forwarded: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        if name.lower() not in dropped:
            forwarded.add(name, value)
    forwarded.update(backend.auth_headers())
    # Bodies are relayed byte for byte, and the gateway reads usage from them.
    forwarded.setdefault("Accept-Encoding", "identity")
    return forwarded


def response_headers(headers: CIMultiDictProxy[str]) -> Headers:
    """The backend's headers as the gateway gets them: lower-case names, no hop-by-hop ones."""
    dropped = _DROPPED_RESPONSE_HEADERS
    if "connection" in headers:
        dropped = dropped | _connection_tokens(headers.getall("connection"))
    return tuple(
        (lowered, value)
        for name, value in headers.items()
        if (lowered := name.lower()) not in dropped
    )


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """Header names a ``Connection`` header marks as hop-by-hop."""
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )
