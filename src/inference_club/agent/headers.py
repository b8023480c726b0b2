"""Which HTTP headers cross the agent, each way, and which stop at it."""

from collections.abc import Iterable, Sequence

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
# The body goes right behind the head, so nothing waits for a "100 Continue".
_DROPPED_REQUEST_HEADERS = _HOP_BY_HOP | {"host", "authorization", "expect"}
# The gateway frames the body itself, so a length from the backend would only mislead it.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {"content-length"}


def request_headers(headers: Headers, backend: BackendSettings) -> list[tuple[str, str]]:
    """The headers to send the backend: the client's, less hop-by-hop ones, plus its own key.

    A Content-Length passes: the backend client honours it for a streamed body only.
    """
    dropped = _DROPPED_REQUEST_HEADERS
    named = [value for name, value in headers if name.lower() == "connection"]
    if named:
        dropped = dropped | _connection_tokens(named)
    forwarded: list[tuple[str, str]] = []
    encoding = False
    for name, value in headers:
        lowered = name.lower()
        if lowered not in dropped:
            forwarded.append((name, value))
            encoding = encoding or lowered == "accept-encoding"
    forwarded.extend(backend.auth_headers().items())
    if not encoding:
        # Bodies are relayed byte for byte, and the gateway reads usage from them.
        forwarded.append(("Accept-Encoding", "identity"))
    return forwarded


def response_headers(headers: Sequence[tuple[str, str]]) -> Headers:
    """The backend's headers as the gateway gets them: lower-case names, no hop-by-hop ones."""
    dropped = _DROPPED_RESPONSE_HEADERS
    named = [value for name, value in headers if name.lower() == "connection"]
    if named:
        dropped = dropped | _connection_tokens(named)
    return tuple(
        (lowered, value) for name, value in headers if (lowered := name.lower()) not in dropped
    )


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """Header names a ``Connection`` header marks as hop-by-hop."""
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )
