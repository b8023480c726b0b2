"""Format sniffing from leading bytes, on real encoded files and on look-alikes."""

import random

import pytest

from inference_club.media import FILE_EXTENSIONS, SNIFF_BYTES, sniff_audio, sniff_image

AUDIO_TYPES = ("audio/flac", "audio/mp4", "audio/mpeg", "audio/ogg", "audio/wav", "audio/webm")


@pytest.mark.parametrize("mime", AUDIO_TYPES)
def test_sniff_audio_recognises_each_real_format(sine_file, mime):
    """Each of the six accepted containers is recognised from its first bytes alone."""
    head = sine_file(mime, 0.3).read_bytes()[:SNIFF_BYTES]
    assert sniff_audio(head) == mime
    assert sniff_image(head) is None


@pytest.mark.parametrize(
    ("codec", "pixel_format", "mime"),
    [
        ("png", "rgb24", "image/png"),
        ("mjpeg", "yuvj420p", "image/jpeg"),
        ("libwebp", "yuv420p", "image/webp"),
        ("gif", "rgb8", "image/gif"),
    ],
)
def test_sniff_image_recognises_real_images(encoded_image, codec, pixel_format, mime):
    """PNG, JPEG, WebP and GIF files are recognised from their first bytes."""
    head = encoded_image(codec, pixel_format)[:SNIFF_BYTES]
    assert sniff_image(head) == mime
    assert sniff_audio(head) is None


def test_every_sniffed_type_has_a_file_extension(sine_file, encoded_image):
    """Every MIME type the sniffers can return maps to a file extension."""
    returned = {
        sniff_audio(sine_file(mime, 0.2).read_bytes()[:SNIFF_BYTES]) for mime in AUDIO_TYPES
    }
    returned.add(sniff_image(encoded_image("png", "rgb24")))
    assert returned <= set(FILE_EXTENSIONS)


def test_flac_behind_an_id3_tag_is_flac():
    """An ID3 tag followed by a FLAC stream is FLAC, not MP3."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x04" + b"\x00" * 4
    assert sniff_audio(tag + b"fLaC\x00\x00\x00\x22") == "audio/flac"
    assert sniff_audio(tag + b"\xff\xfb\x90\x64") == "audio/mpeg"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"RIFF",
        b"RIFF\x24\x00\x00\x00AVI LIST",
        b"\xff\xf1\x50\x80\x02\x1f\xfc",  # ADTS AAC: frame sync but layer 0
        b"\xff\xfb\xf0\x64\x00\x00",  # MP3 sync with the reserved bitrate index 15
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # HEIF still image
        b"ID3\x04\x00\x00\x80\x00\x00\x00",  # size byte with the high bit set is not syncsafe
        b"<html><body>not audio</body></html>",
    ],
)
def test_sniff_audio_rejects_look_alikes(head):
    """Truncated headers, other RIFF and ISO media kinds, AAC and text are not audio."""
    assert sniff_audio(head) is None


def test_sniffers_reject_random_bytes():
    """Random bytes are neither audio nor image, whatever their length."""
    noise = random.Random(11)
    for size in (0, 3, 12, SNIFF_BYTES, 4096):
        head = b"\x00" + noise.randbytes(size)
        assert sniff_audio(head) is None
        assert sniff_image(head) is None
