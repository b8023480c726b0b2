"""A provider's image reply: its images' texts are cut out where they stand, never parsed as
JSON strings, and the reply reads exactly as a JSON parser reads it."""

import base64
from typing import Any

import orjson
import pybase64
import pytest

from inference_club.gateway.errors import UpstreamError
from inference_club.gateway.image_reply import ImageText, encode_answer, parse_image_reply

FIRST = base64.b64encode(bytes(range(256)) * 40).decode()
SECOND = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"x" * 1000).decode()


def _as_json_reads_it(document: Any) -> Any:
    """The document with each image's text as the string a JSON parser would have made."""
    if isinstance(document, dict):
        return {key: _as_json_reads_it(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_as_json_reads_it(value) for value in document]
    if isinstance(document, ImageText):
        return bytes(document.view).decode()
    return document


def _images(document: dict[str, Any]) -> list[Any]:
    return [item.get("b64_json") for item in document.get("data", [])]


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps({"created": 1, "data": [{"b64_json": FIRST}, {"b64_json": SECOND}]}),
        # Spaces around the colon, as Python's json module writes by default, and a prompt.
        (
            '{"created": 7, "data": [{"revised_prompt": "a \\"b64_json\\": \\"fox\\"", '
            f'"b64_json" :  "{FIRST}"}}], "usage": {{"total_tokens": 3}}}}'
        ).encode(),
    ],
    ids=["compact", "spaced"],
)
def test_images_are_cut_out_and_the_rest_reads_as_json_reads_it(body: bytes) -> None:
    """Each data item's image is an ImageText over the reply's own bytes, and with the
    texts put back the document equals what a JSON parser reads."""
    document = parse_image_reply(body)

    assert all(isinstance(image, ImageText) for image in _images(document))
    assert all(image.view.obj is body for image in _images(document))
    assert _as_json_reads_it(document) == orjson.loads(body)
    assert pybase64.b64decode(_images(document)[0].view, validate=True) == base64.b64decode(FIRST)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            b'{"data": [{"b64_json": "' + FIRST.replace("/", "\\/").encode() + b'"}]}',
            "an escaped slash in the image",
        ),
        (b'{"b64_json": "QUJD", "data": [{"b64_json": "REVG"}]}', "an image field before data"),
        (b'{"data": [{"b64_json": "QUJD"}], "b64_json": "REVG"}', "an image field after data"),
        (b'{"b64_json": "QUJD"}', "an image field and no data"),
        (
            b'{"data": [{"b64_json": "QUJD"}, {"b64\\u005fjson": "#1"}]}',
            "an escaped key whose value is a placeholder",
        ),
        (
            b'{"data": [{"b64\\u005fjson": "#0"}, {"b64_json": "QUJD"}]}',
            "an escaped key before the image",
        ),
        (
            b'{"data": [{"x\\"b64_json": "QUJD", "b64\\u005fjson": "#0"}]}',
            "an image field inside a key, and a placeholder under an escaped key",
        ),
        (b'{"data": [{"b64_json": null}]}', "no image text"),
        (b'{"data": [{"url": "http://x"}]}', "no image field"),
    ],
)
def test_a_reply_that_cannot_be_cut_is_read_whole_as_json(body: bytes, why: str) -> None:
    """Replies the cutting does not fit are parsed whole, so they read exactly as JSON."""
    document = parse_image_reply(body)

    assert document == orjson.loads(body), why
    assert not any(isinstance(image, ImageText) for image in _images(document))


@pytest.mark.parametrize(
    "body",
    [b"not json", b'["a list"]', b'{"data": [{"b64_json": "QUJD"}]', b'{"data": [{"b64_json": "QU'],
)
def test_a_reply_that_is_not_a_json_object_is_a_bad_gateway(body: bytes) -> None:
    """Something other than a JSON object, cut or not, is the provider's fault: a 502."""
    with pytest.raises(UpstreamError, match="something other than a JSON object"):
        parse_image_reply(body)


def test_an_answer_holds_each_image_text_as_json_would_write_it() -> None:
    """An answer whose items hold images' texts encodes as the same answer with the texts as
    strings would, with each text in its own item, and a placeholder-like string elsewhere
    left as it is."""
    reply = orjson.dumps({"data": [{"b64_json": FIRST}, {"b64_json": SECOND}]})
    texts = _images(parse_image_reply(reply))
    answer = {
        "created": 5,
        "data": [
            {"url": "http://a/1", "b64_json": texts[0], "revised_prompt": '"b64_json":"#1"'},
            {"url": "http://a/2", "b64_json": texts[1]},
            {"url": "http://a/3"},
        ],
        "extra": {"b64_json": "#0"},
    }
    expected = _as_json_reads_it(answer)

    assert orjson.loads(encode_answer(answer)) == expected
    assert encode_answer(expected) == orjson.dumps(expected)  # plain strings: as orjson writes
