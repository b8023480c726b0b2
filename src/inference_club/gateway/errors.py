"""The gateway's error hierarchy and the OpenAI error envelope, made in exactly one place.

ApiError                        an HTTP error answered to a /v1 client
├── BadRequest (400)            malformed JSON, a missing field
├── NotAuthenticated (401)      no API key
├── AuthenticationFailed (401)  unknown or revoked API key
├── NoProvider (404)            no reachable online provider serves the model
├── TooLarge (413)              the body is over the size limit
├── UnsupportedMedia (415)      an upload of a type we do not take
├── RateLimited (429)           over the key's request rate
├── UpstreamError (502)         the provider or its local server failed or timed out
└── Overloaded (503)            every eligible provider is busy
"""

from typing import Any

import orjson


class ApiError(Exception):
    """An error answered to the client in the OpenAI envelope."""

    status = 500
    type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        """The OpenAI error object for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        """The encoded envelope."""
        return orjson.dumps(self.envelope())


class BadRequest(ApiError):
    """400: the request is malformed."""

    status = 400
    type = "invalid_request_error"


class NotAuthenticated(ApiError):
    """401: no credentials."""

    status = 401
    type = "not_authenticated"

    def __init__(self) -> None:
        super().__init__("Authentication credentials were not provided.")


class AuthenticationFailed(ApiError):
    """401: credentials that are not valid (never echoed back)."""

    status = 401
    type = "authentication_failed"

    def __init__(self) -> None:
        super().__init__("Incorrect API key provided, or the key was revoked.")


class NoProvider(ApiError):
    """404: nothing this user may reach serves the model right now."""

    status = 404
    type = "no_provider"

    @classmethod
    def for_model(cls, model: str) -> "NoProvider":
        """The contract's message for a model with no reachable provider."""
        return cls(f"No online provider serving model '{model}' for this user.", param="model")


class TooLarge(ApiError):
    """413: the request body is over the limit."""

    status = 413
    type = "request_too_large"


class UnsupportedMedia(ApiError):
    """415: an upload of a type this endpoint does not take."""

    status = 415
    type = "unsupported_media_type"


class RateLimited(ApiError):
    """429: over the request rate or a quota."""

    status = 429
    type = "rate_limit_exceeded"


class UpstreamError(ApiError):
    """502: the provider or its local model server failed."""

    status = 502
    type = "upstream_error"


class Overloaded(ApiError):
    """503: every eligible provider is busy."""

    status = 503
    type = "overloaded"
