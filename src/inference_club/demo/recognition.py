"""PocketSphinx speech recognition of any audio PyAV can decode, with word timings."""

import io
import math
import re
import sys
import threading
from array import array
from dataclasses import dataclass

import av
import av.error
from pocketsphinx import Decoder  # type: ignore[import-untyped]

# The bundled en-us acoustic model is trained on 16 kHz audio, cut in 10 ms frames.
SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100
# A pause at least this long starts a new segment.
SEGMENT_PAUSE_SECONDS = 0.5
# Below about -50 dBFS nothing is said; PocketSphinx would still hallucinate a word or two.
SILENCE_PEAK = 100
_ALTERNATE_PRONUNCIATION = re.compile(r"\(\d+\)$")


class UndecodableAudioError(ValueError):
    """The upload is not audio PyAV can decode."""


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One recognised word and when it was said, in seconds from the start."""

    word: str
    start: float
    end: float
    log_probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said in a recording, word by word."""

    words: tuple[TimedWord, ...]
    duration: float

    @property
    def text(self) -> str:
        """The words joined by spaces."""
        return " ".join(word.word for word in self.words)

    def segments(self) -> list[tuple[TimedWord, ...]]:
        """The words grouped into runs separated by pauses."""
        runs: list[list[TimedWord]] = []
        for word in self.words:
            if not runs or word.start - runs[-1][-1].end >= SEGMENT_PAUSE_SECONDS:
                runs.append([])
            runs[-1].append(word)
        return [tuple(run) for run in runs]


def decode_to_pcm(data: bytes) -> bytes:
    """16 kHz mono 16-bit PCM of the first audio stream in ``data`` (any container PyAV reads)."""
    pcm = bytearray()
    try:
        with av.open(io.BytesIO(data), "r", metadata_errors="replace") as container:
            if not container.streams.audio:
                msg = "the file has no audio stream"
                raise UndecodableAudioError(msg)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for converted in resampler.resample(frame):
                    pcm += _samples(converted)
            for converted in resampler.resample(None):
                pcm += _samples(converted)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        msg = "the file could not be decoded as audio"
        raise UndecodableAudioError(msg) from exc
    return bytes(pcm)


def _samples(frame: av.AudioFrame) -> bytes:
    # Planes are padded for SIMD; only the first samples * 2 bytes are sound.
    return bytes(frame.planes[0])[: frame.samples * 2]


class SpeechRecognizer:
    """The bundled US English PocketSphinx model, decoding one recording at a time."""

    def __init__(self) -> None:
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="ERROR")
        self._lock = threading.Lock()

    def transcribe(self, pcm: bytes) -> Transcript:
        """The words in 16 kHz mono 16-bit ``pcm``, with their timings."""
        duration = len(pcm) / 2 / SAMPLE_RATE
        if _peak(pcm) < SILENCE_PEAK:
            return Transcript(words=(), duration=duration)
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            segments = list(self._decoder.seg()) if self._decoder.hyp() is not None else []
        words = tuple(
            TimedWord(
                word=_ALTERNATE_PRONUNCIATION.sub("", segment.word),
                start=segment.start_frame / FRAMES_PER_SECOND,
                end=(segment.end_frame + 1) / FRAMES_PER_SECOND,
                log_probability=min(0.0, math.log(max(segment.prob, 1e-10))),
            )
            for segment in segments
            if _is_word(segment.word)
        )
        return Transcript(words=words, duration=duration)


def _is_word(token: str) -> bool:
    # Fillers are <s>, </s>, <sil>, [NOISE], [SPEECH] and the like; words are plain letters.
    return bool(token) and token[0] not in "<[+"


def _peak(pcm: bytes) -> int:
    samples = array("h", pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return max(max(samples, default=0), -min(samples, default=0))
