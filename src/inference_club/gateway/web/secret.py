"""The secret that signs session cookies: from the settings, or made once and kept on disk."""

import os
import secrets
import time
from pathlib import Path

from inference_club.gateway.settings import GatewaySettings

SECRET_FILE = "session-secret"  # noqa: S105 - a file name, not a secret
_SECRET_BYTES = 48
MIN_SECRET_LENGTH = 32
_READ_ATTEMPTS = 20


def load_session_secret(settings: GatewaySettings) -> str:
    """The configured secret, else the one in ``<data_dir>/session-secret`` (made if missing).

    Keeping it on disk means sessions survive a restart, and every gateway node sharing the
    data directory signs alike; the file is created readable by its owner only.
    """
    if settings.session_secret:
        # GatewaySettings already refused a short one.
        return settings.session_secret
    return _secret_file(settings.data_dir / SECRET_FILE)


def _secret_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two processes start at once, one writes and the other reads its secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secret + "\n")
        file.flush()
        os.fsync(file.fileno())
    return secret


def _read_secret(path: Path) -> str:
    # Another process may have created the file a moment ago and be writing it still.
    for _attempt in range(_READ_ATTEMPTS):
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= MIN_SECRET_LENGTH:
            return secret
        time.sleep(0.05)
    msg = f"{path} holds no usable secret; delete it to have a new one made"
    raise ValueError(msg)
