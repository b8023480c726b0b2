"""Why a tunnel connection closes: WebSocket close codes and the protocol error.

ProtocolError(ValueError)   a frame that cannot be decoded or breaks a limit;
                            carries the close code and a reason safe to show the peer.
"""

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes used on the tunnel (RFC 6455 plus the private 4000 range)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    MALFORMED_FRAME = 4000
    UNSUPPORTED_VERSION = 4001
    AUTHENTICATION_FAILED = 4003
    HEARTBEAT_TIMEOUT = 4008
    REPLACED = 4009


class ProtocolError(ValueError):
    """A peer sent something the protocol does not allow; the connection must close."""

    def __init__(self, reason: str, code: CloseCode = CloseCode.MALFORMED_FRAME) -> None:
        # WebSocket close reasons are limited to 123 bytes of UTF-8.
        super().__init__(reason)
        self.reason = reason.encode()[:123].decode(errors="ignore")
        self.code = code
