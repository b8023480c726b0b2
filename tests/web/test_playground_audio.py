"""The playground's audio tabs against the demo Piper and PocketSphinx servers."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from inference_club.demo.launcher import DemoServer, running_demo_server
from tests.support.processes import start_agent
from tests.web.conftest import Club, sign_in


@pytest.fixture(scope="module")
def speech_servers() -> Iterator[tuple[DemoServer, DemoServer]]:
    """The TTS and STT demo servers."""
    with running_demo_server("tts_server") as tts, running_demo_server("stt_server") as stt:
        yield tts, stt


@pytest.fixture(scope="module")
def member(club: Club, speech_servers: tuple[DemoServer, DemoServer]) -> str:
    """A member whose provider serves ``piper-joe`` (tts) and ``pocketsphinx-en-us`` (stt)."""
    tts, stt = speech_servers
    club.add_member("ada")
    token = club.gateway.add_provider("ada", "ada-home")
    config = club.tmp / "speech-agent.toml"
    config.write_text(
        f'[[backends]]\nurl = "{tts.base_url}"\nservice_type = "tts"\n'
        f'[[backends]]\nurl = "{stt.base_url}"\nservice_type = "stt"\n',
        encoding="utf-8",
    )
    club.processes.append(start_agent(club.tmp, club.url, token, extra=("--config", str(config))))
    return "ada"


def _open(page: Page, tab: str, select: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(f"/playground?tab={tab}")
        if page.locator(f"{select} option").count():
            return
        time.sleep(0.2)
    msg = f"no model in {select}"
    raise AssertionError(msg)


def test_speech_plays_and_transcription_reads_it_back(
    club: Club,
    member: str,
    speech_servers: tuple[DemoServer, DemoServer],
    new_page: Callable[[], Page],
    tmp_path: Path,
) -> None:
    """Speak picks a voice and fills the player; an uploaded WAV comes back as text."""
    page = new_page()
    sign_in(page, member)
    _open(page, "speech", "#speech-model")
    expect(page.locator("#speech-voice option")).not_to_have_count(1)
    page.fill("#speech-input", "hello world")
    page.click("#speech-form button[type=submit]")
    expect(page.locator("#speech-meta")).to_contain_text("KiB")
    assert (page.get_attribute("#speech-audio", "src") or "").startswith("blob:")
    page.wait_for_function(
        "() => document.querySelector('#speech-audio').duration > 0.3", timeout=10_000
    )

    tts, _stt = speech_servers
    wav = httpx.post(
        f"{tts.base_url}/audio/speech",
        json={"model": "piper-joe", "input": "the quick brown fox jumps over the lazy dog"},
        timeout=30,
    )
    assert wav.status_code == 200
    recording = tmp_path / "fox.wav"
    recording.write_bytes(wav.content)
    _open(page, "transcribe", "#transcribe-model")
    page.set_input_files("#transcribe-file", str(recording))
    page.click("#transcribe-form button[type=submit]")

    expect(page.locator("#transcript")).to_be_visible(timeout=20_000)
    words = set(page.inner_text("#transcript").lower().split())
    assert len(words & {"quick", "brown", "fox", "jumps", "lazy", "dog"}) >= 3
    expect(page.locator("#transcribe-meta")).to_contain_text("s of audio")
