"""Audio duration measured from the audio itself, for every accepted container."""

import random

import pytest

from inference_club.media import MediaError, audio_duration

NOISE = random.Random(20).randbytes(2048)
AUDIO_TYPES = ("audio/flac", "audio/mp4", "audio/mpeg", "audio/ogg", "audio/wav", "audio/webm")


@pytest.mark.parametrize("mime", AUDIO_TYPES)
@pytest.mark.parametrize("seconds", [1.5, 4.25])
def test_duration_of_each_format(sine_file, mime, seconds):
    """A sine of known length measures within 50 ms in every container."""
    assert audio_duration(sine_file(mime, seconds)) == pytest.approx(seconds, abs=0.05)


def test_webm_without_a_stated_duration_is_measured(sine_file):
    """A live WebM (as browsers record it) states no duration; its packets still give one."""
    path = sine_file("audio/webm", 2.0, container_options={"live": "1"})
    assert audio_duration(path) == pytest.approx(2.0, abs=0.05)


def test_wav_streamed_with_an_unknown_size(sine_file):
    """A WAV whose data size was left as 0xFFFFFFFF is measured from the file's length."""
    path = sine_file("audio/wav", 1.5)
    data = bytearray(path.read_bytes())
    data_chunk = data.index(b"data")
    data[data_chunk + 4 : data_chunk + 8] = b"\xff\xff\xff\xff"
    data[4:8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert audio_duration(path) == pytest.approx(1.5, abs=0.01)


def test_wav_with_a_lying_size_is_capped_by_the_file(sine_file):
    """A WAV header that claims more data than the file holds cannot inflate the duration."""
    path = sine_file("audio/wav", 1.0)
    truncated = path.read_bytes()[: 44 + 22050]  # half a second of 16-bit mono at 22050 Hz
    path.write_bytes(truncated)
    assert audio_duration(path) == pytest.approx(0.5, abs=0.01)


def test_mp3_behind_a_large_id3_tag(sine_file, tmp_path):
    """An ID3 tag larger than the sniffed head does not hide the MP3 after it."""
    audio = sine_file("audio/mpeg", 1.5).read_bytes()
    padding = 4096
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, padding >> 7, padding & 0x7F]) + b"\x00" * padding
    path = tmp_path / "tagged.bin"
    path.write_bytes(tag + audio)
    assert audio_duration(path) == pytest.approx(1.5, abs=0.05)


def test_flac_behind_a_large_id3_tag(sine_file, tmp_path):
    """FLAC after an ID3 tag larger than the sniffed head is recognised and measured."""
    audio = sine_file("audio/flac", 1.5).read_bytes()
    tag = b"ID3\x04\x00\x00\x00\x00\x02\x00" + b"\x00" * 256
    path = tmp_path / "tagged.bin"
    path.write_bytes(tag + audio)
    assert audio_duration(path) == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is not audio at all",
        NOISE.replace(b"\xff", b"\x00"),
        b"OggS" + b"\x00" * 200,
        b"\x1a\x45\xdf\xa3" + NOISE[:500],
        b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00" + NOISE[:300],
        b"fLaC" + NOISE[:300],
    ],
)
def test_garbage_raises_media_error(tmp_path, content):
    """Unrecognised or undecodable bytes raise MediaError, which is a ValueError."""
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        audio_duration(path)
    assert issubclass(MediaError, ValueError)


def test_truncated_mp3_header_raises_media_error(sine_file, tmp_path):
    """The first bytes of an MP3 with nothing decodable after them raise MediaError."""
    path = tmp_path / "cut.mp3"
    path.write_bytes(sine_file("audio/mpeg", 0.5).read_bytes()[:4] + b"\x00" * 64)
    with pytest.raises(MediaError):
        audio_duration(path)
