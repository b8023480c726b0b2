"""A provider's image reply read without making a Python string of every image.

An image generation reply is a JSON object whose ``data`` items each carry one image as
base64 text (``b64_json``): a megabyte or more per image. Parsing it all as JSON makes a
string of each image only to decode it into bytes next, and took the gateway more time per
image than anything else it does for one. Here each image's text is cut out of the reply
where it stands, the rest (the reply's few hundred other bytes) is parsed as JSON, and the
images are decoded straight from the reply's bytes.

Base64 text holds no quote and no backslash, so the first quote after an image's opening
quote ends it. The whole reply is parsed as JSON instead when that does not hold (an image's
text with a JSON escape in it, as some encoders put before every ``/``), or when an image
field stands anywhere but in a ``data`` item.
"""

import re
from typing import Any

import orjson

from inference_club.gateway.media_replies import parse_reply_object

# Where an image's text begins: the key, the colon and the string's opening quote. Found
# inside a string (after a key's or a value's escaped quote, as in ``"x\\"b64_json": ...``)
# it follows a backslash, which a key's opening quote never does.
_IMAGE_FIELD = re.compile(rb'"b64_json"\s*:\s*"')
_BACKSLASH = ord("\\")
# What an image's text is replaced with before parsing (never valid base64). A provider may
# send the same text itself (under an escaped key): the texts must then map one to one onto
# the data items' placeholders, or the reply is parsed whole.
_PLACEHOLDER = "#%d"
# An image field up to its text, as compact JSON writes it.
_FIELD_OPENING = b'"b64_json":"'


class ImageText:
    """One image's base64 text, where it stands in the reply (never copied out of it)."""

    __slots__ = ("view",)

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def __len__(self) -> int:
        return len(self.view)


def parse_image_reply(body: bytes) -> dict[str, Any]:
    """The provider's reply as a JSON object whose ``data`` items hold each image's text as
    an ``ImageText`` (or a ``str`` when the reply had to be parsed whole); a 502 when the
    reply is not a JSON object."""
    cut = _cut_images(body)
    if cut is not None:
        skeleton, texts = cut
        document = parse_reply_object(skeleton)
        if _put_back(document, texts):
            return document
    return parse_reply_object(body)


def encode_answer(document: dict[str, Any]) -> bytes:
    """``orjson.dumps(document)`` for an answer whose ``data`` items may hold ``ImageText``:
    each text goes into the JSON as it stands in the reply, never made a string. It must be
    valid base64 (checked by decoding it), which a JSON string holds as it is. The items'
    texts are replaced in ``document``."""
    texts: list[ImageText] = []
    for item in document.get("data") or ():
        text = item.get("b64_json")
        if isinstance(text, ImageText):
            item["b64_json"] = _PLACEHOLDER % len(texts)
            texts.append(text)
    encoded = orjson.dumps(document)
    if not texts:
        return encoded
    pieces: list[bytes | memoryview] = []
    done = 0
    for index, text in enumerate(texts):
        placeholder = (_PLACEHOLDER % index).encode()
        # Compact JSON: the data items come first, and no string can hold this unescaped.
        at = encoded.index(_FIELD_OPENING + placeholder + b'"', done) + len(_FIELD_OPENING)
        pieces += (encoded[done:at], text.view)
        done = at + len(placeholder)
    pieces.append(encoded[done:])
    return b"".join(pieces)


def _cut_images(body: bytes) -> tuple[bytes, list[ImageText]] | None:
    """The reply with every image's text replaced by a placeholder, and the texts; None when
    an image's text holds a backslash, or an image field may stand inside a string."""
    pieces: list[bytes] = []
    texts: list[ImageText] = []
    view = memoryview(body)
    done = 0
    # Each search starts after the text before: the texts are most of the reply.
    while (match := _IMAGE_FIELD.search(body, done)) is not None:
        if match.start() > 0 and body[match.start() - 1] == _BACKSLASH:
            return None
        start = match.end()
        end = body.find(b'"', start)
        if end < 0 or body.find(b"\\", start, end) >= 0:
            return None
        pieces += (body[done:start], (_PLACEHOLDER % len(texts)).encode())
        texts.append(ImageText(view[start:end]))
        done = end
    if not texts:
        return None
    pieces.append(body[done:])
    return b"".join(pieces), texts


def _put_back(document: dict[str, Any], texts: list[ImageText]) -> bool:
    """Put each image's text in the ``data`` item it was cut from; False unless every text
    was cut from a ``data`` item, once."""
    items = document.get("data")
    if not isinstance(items, list):
        return False
    placed = 0
    for item in items:
        if not isinstance(item, dict) or "b64_json" not in item:
            continue
        if placed == len(texts) or item["b64_json"] != _PLACEHOLDER % placed:
            return False
        item["b64_json"] = texts[placed]
        placed += 1
    return placed == len(texts)
