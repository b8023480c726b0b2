"""Which requests the direct chat path may take, by their headers, read in one pass."""

import pytest

from inference_club.gateway.direct_chat import _direct_headers

AUTH = (b"authorization", b"Bearer ic-abc")
LENGTH = (b"content-length", b"42")


def test_the_length_and_the_authorization_are_read_together() -> None:
    headers = [(b"host", b"gw"), AUTH, (b"content-type", b"application/json"), LENGTH]

    assert _direct_headers(headers) == (42, "Bearer ic-abc")


def test_a_request_without_authorization_may_still_go_direct() -> None:
    """Its refusal (401) is the ASGI path's to write, once the direct path declines it."""
    assert _direct_headers([LENGTH]) == (42, None)


def test_the_first_value_of_each_header_counts() -> None:
    headers = [
        (b"content-length", b"7"),
        (b"authorization", b"Bearer first"),
        (b"content-length", b"9"),
        (b"authorization", b"Bearer second"),
    ]

    assert _direct_headers(headers) == (7, "Bearer first")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([AUTH], id="no length"),
        pytest.param([AUTH, (b"content-length", b"")], id="empty length"),
        pytest.param([AUTH, (b"content-length", b"-1")], id="signed length"),
        pytest.param([AUTH, (b"content-length", b"1e3")], id="not digits"),
        # Latin-1 superscript two: a digit to str.isdigit, not to int().
        pytest.param([AUTH, (b"content-length", b"\xb2")], id="superscript digit"),
        pytest.param([AUTH, LENGTH, (b"transfer-encoding", b"chunked")], id="chunked"),
        pytest.param([(b"transfer-encoding", b"chunked"), LENGTH, AUTH], id="chunked first"),
    ],
)
def test_a_request_without_a_plain_declared_length_is_left_to_the_asgi_path(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert _direct_headers(headers) is None


def test_a_latin_1_authorization_is_decoded_as_latin_1() -> None:
    assert _direct_headers([LENGTH, (b"authorization", b"Bearer caf\xe9")]) == (
        42,
        "Bearer café",
    )
