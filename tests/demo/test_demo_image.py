"""The procedural image demo server over HTTP: PNG output, determinism, URLs and edits."""

import base64
import struct
import zlib

import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def generate(server, **body) -> httpx.Response:
    payload = {"model": "demo-procedural-image", "prompt": "a red fox", **body}
    return httpx.post(f"{server.base_url}/images/generations", json=payload, timeout=30)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking the chunk's CRC."""
    assert data.startswith(PNG_SIGNATURE)
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(data[12:29]) == crc
    return struct.unpack(">II", data[16:24])


def b64_images(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int)
    return [base64.b64decode(item["b64_json"]) for item in body["data"]]


def test_generation_returns_a_png_of_the_asked_size(image_server, decode_rgb):
    """The default answer is b64_json holding a decodable PNG of the requested size."""
    (png,) = b64_images(generate(image_server, size="320x200"))
    assert png_size(png) == (320, 200)
    width, height, pixels = decode_rgb(png)
    assert (width, height) == (320, 200)
    assert len(set(pixels[i : i + 3] for i in range(0, len(pixels), 3))) > 50


def test_default_size_is_256(image_server):
    """Without a size the image is 256x256."""
    (png,) = b64_images(generate(image_server))
    assert png_size(png) == (256, 256)


def test_same_prompt_same_image_other_prompt_other_image(image_server):
    """Images depend only on the prompt: equal for equal prompts, different otherwise."""
    first = b64_images(generate(image_server, prompt="lighthouse"))
    again = b64_images(generate(image_server, prompt="lighthouse"))
    other = b64_images(generate(image_server, prompt="lighthouse at night"))
    assert first == again
    assert first != other


def test_n_gives_distinct_images(image_server):
    """n=3 returns three different pictures."""
    images = b64_images(generate(image_server, n=3, size="64x64"))
    assert len(images) == 3
    assert len(set(images)) == 3


def test_url_format_serves_the_png_from_this_server(image_server):
    """response_format=url returns a URL on this server that serves the PNG with image/png."""
    response = generate(image_server, response_format="url", size="128x96")
    url = response.json()["data"][0]["url"]
    assert url.startswith(image_server.base_url + "/files/")
    fetched = httpx.get(url, timeout=10)
    assert fetched.headers["content-type"] == "image/png"
    assert png_size(fetched.content) == (128, 96)
    missing = httpx.get(image_server.base_url + "/files/not-a-real-id.png", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_largest_size_is_fast_enough(image_server):
    """A 1024x1024 image is made in well under the client's patience."""
    response = generate(image_server, size="1024x1024")
    assert png_size(b64_images(response)[0]) == (1024, 1024)
    assert response.elapsed.total_seconds() < 5


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"size": "2048x2048"}, "size"),
        ({"size": "big"}, "size"),
        ({"size": "8x8"}, "size"),
        ({"n": 11}, "n"),
        ({"n": 0}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"response_format": "jpeg"}, "response_format"),
    ],
)
def test_bad_generation_requests(image_server, body, param):
    """Bad sizes and counts, empty prompts and unknown formats are 400s naming the field."""
    response = generate(image_server, **body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_openai_sdk_generate(image_server):
    """The official client gets b64 images it can decode."""
    client = OpenAI(base_url=image_server.base_url, api_key="unused")
    result = client.images.generate(
        model="demo-procedural-image", prompt="a boat", size="256x256", response_format="b64_json"
    )
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (256, 256)


def edit(server, image: bytes, mask: bytes | None = None, **fields) -> httpx.Response:
    files = {"image": ("in.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    data = {"model": "demo-procedural-image", "prompt": "make it dusk", **fields}
    return httpx.post(f"{server.base_url}/images/edits", data=data, files=files, timeout=30)


def test_edit_recolors_the_input(image_server, decode_rgb):
    """An edit returns a PNG of the input's size whose pixels differ from the input's."""
    (source,) = b64_images(generate(image_server, size="96x64"))
    (edited,) = b64_images(edit(image_server, source))
    assert png_size(edited) == (96, 64)
    assert decode_rgb(edited)[2] != decode_rgb(source)[2]
    assert b64_images(edit(image_server, source)) == [edited]


def test_edit_accepts_jpeg_and_webp(image_server, encode_picture):
    """JPEG and WebP inputs are decoded and edited too."""
    pixels = bytes(range(256)) * 48  # 64x64 RGB
    for codec, pixel_format in (("mjpeg", "yuvj420p"), ("libwebp", "yuv420p")):
        picture = encode_picture(codec, pixel_format, 64, 64, pixels)
        (edited,) = b64_images(edit(image_server, picture))
        assert png_size(edited) == (64, 64)


def test_edit_changes_only_the_transparent_part_of_the_mask(
    image_server, decode_rgb, encode_picture
):
    """With a mask, pixels under its transparent left half change; the opaque right half stays."""
    width, height = 32, 16
    (source,) = b64_images(generate(image_server, size=f"{width}x{height}"))
    transparent, opaque = bytes(4), b"\0\0\0\xff"
    mask_pixels = (transparent * (width // 2) + opaque * (width // 2)) * height
    mask = encode_picture("png", "rgba", width, height, mask_pixels, source_format="rgba")
    (edited,) = b64_images(edit(image_server, source, mask))
    _, _, before = decode_rgb(source)
    _, _, after = decode_rgb(edited)
    half = width // 2 * 3
    rows = range(0, len(before), width * 3)
    assert all(before[r + half : r + width * 3] == after[r + half : r + width * 3] for r in rows)
    assert any(before[r : r + half] != after[r : r + half] for r in rows)


def test_edit_mask_of_another_size_is_refused(image_server, encode_picture):
    """A mask whose size differs from the image's is a 400 naming the mask."""
    (source,) = b64_images(generate(image_server, size="32x32"))
    mask = encode_picture("png", "rgba", 16, 16, bytes(16 * 16 * 4), source_format="rgba")
    response = edit(image_server, source, mask)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "mask"


def test_edit_of_something_not_an_image_is_refused(image_server):
    """Bytes that are not an image are a 400 naming the image field."""
    response = edit(image_server, b"definitely not a picture" * 10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"


def test_models_lists_the_procedural_generator(image_server):
    """/v1/models names the demo generator as such."""
    body = httpx.get(f"{image_server.base_url}/models", timeout=10).json()
    assert [model["id"] for model in body["data"]] == ["demo-procedural-image"]
