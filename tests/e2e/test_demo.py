"""``inference-club demo`` as a newcomer runs it: real processes, the openai SDK, then Ctrl-C."""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support.processes import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The console script the README's command runs, from the virtual environment running the tests.
DEMO_SCRIPT = Path(sys.executable).parent / "inference-club"
MODELS = {
    "smollm2-135m-instruct": "llm",
    "piper-joe": "tts",
    "pocketsphinx-en-us": "stt",
    "demo-procedural-image": "image",
}
FOX = "the quick brown fox jumps over the lazy dog"
READY_TIMEOUT = 120.0


@dataclass
class DemoProcess:
    """One ``inference-club demo`` run, with what it printed so far."""

    popen: subprocess.Popen[str]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    finished_reading: threading.Event = field(default_factory=threading.Event)

    def output(self) -> str:
        """Everything printed on stdout so far."""
        return "".join(self.lines)

    def stderr(self) -> str:
        """Everything printed on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def printed(self, label: str) -> str | None:
        """The value on the ``label:`` line of the welcome text, once printed."""
        match = re.search(rf"^\s+{re.escape(label)}:\s+(\S+)$", self.output(), re.MULTILINE)
        return match.group(1) if match else None

    def wait_ready(self) -> tuple[str, str]:
        """The base URL and API key, once the demo prints them."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            key, base_url = self.printed("API key"), self.printed("OpenAI base URL")
            if key and base_url:
                return base_url, key
            if self.popen.poll() is not None:
                self.finished_reading.wait(5)
                pytest.fail(f"demo exited {self.popen.returncode}:\n{self.output()}{self.stderr()}")
            time.sleep(0.05)
        pytest.fail(f"demo printed no key within {READY_TIMEOUT} s:\n{self.output()}")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``signum`` and wait for the demo to exit; its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"demo did not stop within {timeout} s:\n{self.output()}")
        self.finished_reading.wait(5)
        return code


@dataclass
class RunningDemo:
    """A demo that printed its welcome."""

    process: DemoProcess
    base_url: str
    api_key: str

    def client(self) -> OpenAI:
        """An openai client for the demo's gateway."""
        return OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=60)


def start_demo(data: Path, port: int, log_dir: Path) -> DemoProcess:
    """Run the README's command: ``inference-club demo --port PORT --data DATA``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFERENCE_CLUB_")}
    env["PYTHONUNBUFFERED"] = "1"
    stderr_path = log_dir / f"demo-stderr-{time.monotonic_ns()}.log"
    with stderr_path.open("wb") as stderr:
        popen = subprocess.Popen(
            [str(DEMO_SCRIPT), "demo", "--port", str(port), "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=log_dir,
        )
    demo = DemoProcess(popen, stderr_path)
    threading.Thread(target=_read_lines, args=(demo,), daemon=True).start()
    return demo


def _read_lines(demo: DemoProcess) -> None:
    assert demo.popen.stdout is not None
    for line in demo.popen.stdout:
        demo.lines.append(line)
    demo.finished_reading.set()


class DemoClub:
    """The module's demo: started on demand, on one data directory for every run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "demo-data"
        self.port = free_port()
        self.current: RunningDemo | None = None
        self.keys: list[str] = []

    def ensure(self) -> RunningDemo:
        """The running demo, started if none runs."""
        if self.current is None or self.current.process.popen.poll() is not None:
            process = start_demo(self.data, self.port, self.root)
            try:
                base_url, key = process.wait_ready()
            except BaseException:
                process.stop(signal.SIGTERM)
                raise
            self.current = RunningDemo(process, base_url, key)
            self.keys.append(key)
        return self.current

    def close(self) -> None:
        """Stop the demo if it runs."""
        if self.current is not None:
            self.current.process.stop(signal.SIGTERM)
            self.current = None


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoClub]:
    """One demo data directory and port for the whole module."""
    demo_club = DemoClub(tmp_path_factory.mktemp("demo"))
    try:
        yield demo_club
    finally:
        demo_club.close()


@pytest.fixture
def demo(club: DemoClub) -> RunningDemo:
    """The running demo."""
    return club.ensure()


# -- /proc: which processes the demo started, and whether they are gone --------------------


def process_stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces; the fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every living descendant of ``root``: pid → start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := process_stat(int(entry.name))) is not None:
            parent, _state, start = info
            children.setdefault(parent, []).append(int(entry.name))
            starts[int(entry.name)] = start
    found: dict[int, int] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = starts[pid]
        pending.extend(children.get(pid, []))
    return found


def still_running(processes: dict[int, int]) -> list[int]:
    """The pids of ``processes`` that still run (the same process, not a reused pid)."""
    running = []
    for pid, start in processes.items():
        info = process_stat(pid)
        if info is not None and info[2] == start and info[1] != "Z":
            running.append(pid)
    return running


def command_line(pid: int) -> str:
    """The command line of ``pid``, arguments separated by spaces."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def wait_gone(processes: dict[int, int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``processes`` runs; those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (running := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return running


# -- what a newcomer does with the demo ------------------------------------------------------


def test_lists_the_four_models_with_their_service_types(demo: RunningDemo):
    """/v1/models lists the four demo models, each with its service type, owned by demo-home."""
    models = {model.id: model for model in demo.client().models.list()}
    assert {model_id: models[model_id].model_extra["service_type"] for model_id in models} == MODELS
    assert {model.owned_by for model in models.values()} == {"demo-home"}


def test_chat_answers_in_one_piece(demo: RunningDemo):
    """A non-streamed chat completion from SmolLM2 carries text and token usage."""
    reply = demo.client().chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=8,
    )
    assert reply.choices[0].message.content.strip()
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0


def test_chat_streams_chunk_by_chunk(demo: RunningDemo):
    """A streamed chat completion arrives as several chunks that add up to text."""
    stream = demo.client().chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=8,
        stream=True,
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1
    assert "".join(pieces).strip()


def test_speech_comes_back_as_the_same_words(demo: RunningDemo):
    """Piper's WAV of a sentence, sent to PocketSphinx, is heard as most of the same words."""
    client = demo.client()
    speech = client.audio.speech.create(
        model="piper-joe", voice="joe", input=FOX, response_format="wav"
    )
    assert speech.content[:4] == b"RIFF"
    transcript = client.audio.transcriptions.create(
        model="pocketsphinx-en-us", file=("fox.wav", speech.content)
    )
    heard = transcript.text.lower().split()
    recognised = [word for word in FOX.split() if word in heard]
    assert len(recognised) >= 6, transcript.text


def test_image_link_opens(demo: RunningDemo):
    """A generated image comes back as a URL that serves a PNG without any key."""
    image = demo.client().images.generate(
        model="demo-procedural-image", prompt="a lighthouse at dusk", size="64x64"
    )
    url = image.data[0].url
    assert url is not None
    assert url.startswith(demo.base_url.removesuffix("/v1"))
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def readme_python_snippet() -> str:
    """The one ```python block of README.md."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    assert len(blocks) == 1, "README.md should hold exactly one ```python block"
    return blocks[0]


def test_readme_snippet_runs_as_written(demo: RunningDemo, tmp_path: Path):
    """The README's snippet, with the environment the README says to set, runs against the demo."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
    env |= {"OPENAI_BASE_URL": demo.base_url, "OPENAI_API_KEY": demo.api_key}
    result = subprocess.run(
        [sys.executable, "-c", readme_python_snippet()],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()
    assert set(MODELS) <= {line.split()[0] for line in printed if line.strip()}
    [heard] = [line for line in printed if line.startswith("heard: ")]
    assert {"quick", "fox", "lazy", "dog"} & set(heard.lower().split())
    assert printed[-1].startswith(demo.base_url.removesuffix("/v1"))
    assert (tmp_path / "speech.wav").read_bytes()[:4] == b"RIFF"


# -- stopping, failing, and running again ----------------------------------------------------


def test_a_dying_model_server_stops_everything(club: DemoClub):
    """When a model server dies, the demo stops every child and exits 1 with its last log lines."""
    demo = club.ensure()
    children = descendants(demo.process.popen.pid)
    [image_server] = [pid for pid in children if "demo.image_server" in command_line(pid)]
    os.kill(image_server, signal.SIGKILL)
    code = demo.process.popen.wait(30)
    assert code == 1
    stderr = demo.process.stderr()
    assert "demo-procedural-image server stopped unexpectedly" in stderr
    assert "last log lines" in stderr
    assert wait_gone(children) == []


def test_a_second_run_reuses_the_key(club: DemoClub):
    """Run again on the same data directory, the demo prints the same key, kept in a 0600 file."""
    club.ensure()
    if len(club.keys) == 1:
        club.close()
    demo = club.ensure()
    assert len(club.keys) >= 2
    assert club.keys[-1] == club.keys[0]
    key_file = club.data / "api-key"
    assert key_file.read_text().strip() == demo.api_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert {model.id for model in demo.client().models.list()} == set(MODELS)
    assert "first run" not in demo.process.output()
    password = (club.data / "dashboard-password").read_text().strip()
    assert f"user demo, password {password} " in demo.process.output()


def test_ctrl_c_leaves_no_process_behind(club: DemoClub):
    """SIGINT stops the gateway, the agent and all four model servers, and the demo exits 0."""
    demo = club.ensure()
    children = descendants(demo.process.popen.pid)
    names = " ".join(command_line(pid) for pid in children)
    servers = ("llm_server", "tts_server", "stt_server", "image_server")
    for part in ("cli.main serve", "cli.main agent", *(f"demo.{name}" for name in servers)):
        assert part in names
    assert demo.process.stop(signal.SIGINT) == 0
    assert still_running(children) == []
    assert demo.process.output().rstrip().endswith("stopped")


def test_a_taken_port_is_refused_with_advice(tmp_path: Path):
    """With the port already in use, the demo exits at once and suggests --port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_demo(tmp_path / "data", port, tmp_path)
        code = process.popen.wait(30)
        process.finished_reading.wait(5)
    assert code == 1
    assert f"--port {port + 1}" in process.stderr()
    assert not (tmp_path / "data").exists()
