"""Every /v1 error: status, OpenAI envelope and message."""

import socket

import httpx
import openai
import pytest

from tests.support.processes import Gateway


def post(
    gateway: Gateway,
    path: str,
    key: str | None,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {key}"} if key else {}
    sent.update(headers or {})
    return httpx.post(f"{gateway.v1}{path}", headers=sent, timeout=10, **kwargs)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert message in error["message"]


def test_missing_key_is_not_authenticated(gateway: Gateway) -> None:
    """No Authorization header: 401 not_authenticated with the contract's message."""
    response = httpx.get(f"{gateway.v1}/models", timeout=5)
    assert_error(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )


def test_bad_key_is_authentication_failed_and_not_echoed(gateway: Gateway) -> None:
    """A wrong key: 401 authentication_failed, and the key is not repeated back."""
    response = httpx.get(
        f"{gateway.v1}/models", headers={"Authorization": "Bearer ic_wrongsecret"}, timeout=5
    )
    assert_error(response, 401, "authentication_failed", "API key")
    assert "ic_wrongsecret" not in response.text


def test_revoked_key_stops_working_on_the_next_request(gateway: Gateway, key: str) -> None:
    """keys revoke takes effect at once on a running gateway; a new key works at once."""
    assert (
        httpx.get(
            f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
        ).status_code
        == 200
    )
    gateway.cli("keys", "revoke", key[:12])
    response = httpx.get(
        f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert_error(response, 401, "authentication_failed", "revoked")
    fresh = gateway.cli("keys", "create", "alice").stdout.strip()
    assert (
        httpx.get(
            f"{gateway.v1}/models", headers={"Authorization": f"Bearer {fresh}"}, timeout=5
        ).status_code
        == 200
    )


def test_malformed_json_is_400(gateway: Gateway, key: str) -> None:
    """A body that is not JSON: 400 with a message that says so."""
    response = post(
        gateway,
        "/chat/completions",
        key,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_request_error", "not valid JSON")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "model"),
        ("/chat/completions", {"model": "fake-llm"}, "messages"),
        ("/completions", {"model": "fake-llm"}, "prompt"),
    ],
)
def test_missing_required_field_is_400(
    gateway: Gateway, key: str, path: str, body: dict[str, object], param: str
) -> None:
    """A missing model, messages or prompt: 400 naming the parameter."""
    response = post(gateway, path, key, json=body)
    assert_error(response, 400, "invalid_request_error", f"'{param}'")
    assert response.json()["error"]["param"] == param


def test_unknown_model_is_404_no_provider(gateway: Gateway, key: str) -> None:
    """A model nobody serves: 404 no_provider with the contract's message."""
    response = post(
        gateway,
        "/chat/completions",
        key,
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert_error(
        response, 404, "no_provider", "No online provider serving model 'nope' for this user."
    )


def test_body_over_the_limit_is_refused_before_it_is_read(gateway: Gateway, key: str) -> None:
    """A declared 30 MB body gets 413 while the client has sent only a few bytes of it."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {30 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "fake-llm", ')
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert '"type":"request_too_large"' in answer
    assert "25 MB" in answer


def test_chunked_body_over_the_limit_is_413(gateway: Gateway, key: str) -> None:
    """A body without Content-Length is cut off at the limit."""

    def chunks():  # noqa: ANN202
        for _ in range(30):
            yield b" " * (1024 * 1024)

    response = post(gateway, "/chat/completions", key, content=chunks())
    assert_error(response, 413, "request_too_large", "25 MB")


def test_unknown_path_is_404(gateway: Gateway, key: str) -> None:
    """A path the API does not have answers in the envelope too."""
    response = post(gateway, "/nothing/here", key, json={})
    assert_error(response, 404, "invalid_request_error", "Invalid URL (POST /v1/nothing/here)")


def test_sdk_raises_not_found_for_unknown_model(gateway: Gateway, key: str) -> None:
    """The official SDK maps no_provider to NotFoundError."""
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0).chat.completions.create(
            model="missing", messages=[{"role": "user", "content": "x"}]
        )
