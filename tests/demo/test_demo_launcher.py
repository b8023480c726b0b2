"""Starting and stopping demo servers as child processes."""

import signal
import subprocess
import sys

import httpx
import pytest

from inference_club.demo.launcher import DemoServerError, start_demo_server

pytestmark = pytest.mark.slow


def test_server_reports_an_ephemeral_port_and_stops_cleanly_on_sigterm():
    """Port 0 becomes a real port in the listening line; SIGTERM ends the server with code 0."""
    server = start_demo_server("image_server")
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert not server.base_url.startswith("http://127.0.0.1:0/")
        assert httpx.get(f"{server.base_url}/models", timeout=10).status_code == 200
    finally:
        exit_code = server.stop()
    assert exit_code == 0


def test_sigint_also_stops_a_server():
    """Ctrl+C (SIGINT) ends the server with code 0 too."""
    server = start_demo_server("image_server")
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 0


def test_unknown_server_name_is_refused():
    """Only the four demo servers can be started."""
    with pytest.raises(ValueError, match="unknown demo server"):
        start_demo_server("gateway")


def test_a_server_that_cannot_bind_fails_fast():
    """A server whose port is taken exits, which is an error for the caller, not a hang."""
    first = start_demo_server("image_server")
    try:
        port = first.base_url.removesuffix("/v1").rsplit(":", 1)[1]
        with pytest.raises(DemoServerError, match="exited before it was ready"):
            start_demo_server("image_server", "--port", port, timeout=20)
    finally:
        first.stop()


def test_cli_help_lists_the_flags():
    """Every server's CLI documents --host and --port."""
    for name in ("tts_server", "stt_server", "image_server", "llm_server"):
        result = subprocess.run(
            [sys.executable, "-m", f"inference_club.demo.{name}", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "--port" in result.stdout
        assert "--host" in result.stdout
