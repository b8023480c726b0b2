"""``inference-club agent``: its help, its flags and env vars, and a real agent process."""

import argparse
import asyncio
import os
import signal
import subprocess
import sys

import pytest

from inference_club.cli import agent_command

from .fakes import TOKEN, WAIT

CLI = [sys.executable, "-m", "inference_club.cli.main"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_CLUB_")}
    env.update(extra, PYTHONUNBUFFERED="1")
    return env


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    agent_command.register(parser.add_subparsers())
    return parser.parse_args(["agent", *argv])


def test_help_documents_every_flag_and_env_var():
    """The real command answers --help with each flag, its env var and a config example."""
    result = subprocess.run(
        [*CLI, "agent", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),
    )

    assert result.returncode == 0, result.stderr
    for text in (
        "--server",
        "--token",
        "--backend",
        "--config",
        "--log-level",
        "--rediscover-interval",
        "INFERENCE_CLUB_SERVER",
        "INFERENCE_CLUB_TOKEN",
        "INFERENCE_CLUB_BACKENDS",
        "INFERENCE_CLUB_AGENT_CONFIG",
        "INFERENCE_CLUB_LOG_LEVEL",
        "[[backends]]",
        "share = [",
    ):
        assert text in result.stdout


def test_env_vars_are_the_flags_defaults(monkeypatch, tmp_path):
    """Every flag falls back to its INFERENCE_CLUB_* variable."""
    config = tmp_path / "agent.toml"
    monkeypatch.setenv("INFERENCE_CLUB_SERVER", "https://club.example.org")
    monkeypatch.setenv("INFERENCE_CLUB_TOKEN", "env-token")
    monkeypatch.setenv("INFERENCE_CLUB_AGENT_CONFIG", str(config))
    monkeypatch.setenv("INFERENCE_CLUB_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("INFERENCE_CLUB_REDISCOVER_INTERVAL", "5")

    args = parse([])

    assert args.server == "https://club.example.org"
    assert args.token == "env-token"
    assert args.config == config
    assert args.log_level == "debug"
    assert args.rediscover_interval == 5.0
    assert parse(["--server", "http://127.0.0.1:1"]).server == "http://127.0.0.1:1"


def test_missing_token_fails_fast_with_a_clear_message(monkeypatch, capsys):
    """Without a token the command exits 2 and says where a token can come from."""
    monkeypatch.delenv("INFERENCE_CLUB_TOKEN", raising=False)
    monkeypatch.setenv("INFERENCE_CLUB_BACKENDS", "http://127.0.0.1:8080/v1, http://127.0.0.1:9/v1")
    args = parse(["--server", "http://127.0.0.1:1"])

    assert agent_command.run(args) == 2
    assert "INFERENCE_CLUB_TOKEN" in capsys.readouterr().err


def test_invalid_config_file_names_the_key(tmp_path, capsys):
    """A bad config file stops the command before it connects, naming the key."""
    config = tmp_path / "agent.toml"
    config.write_text('[models."m"]\nshare = ["world"]\n', encoding="utf-8")
    args = parse(["--server", "http://127.0.0.1:1", "--token", "t", "--config", str(config)])

    assert agent_command.run(args) == 2
    assert 'models."m".share' in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_agent_runs_on_uvloop_where_it_is_installed():
    """The event loop factory is uvloop's when uvloop can be imported."""
    import uvloop  # noqa: PLC0415 - not installed on Windows, where this test does not run

    assert agent_command.event_loop_factory() is uvloop.new_event_loop


def test_agent_falls_back_to_asyncio_without_uvloop(monkeypatch):
    """Without uvloop, or on Windows, the agent runs on asyncio's own loop."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert agent_command.event_loop_factory() is asyncio.new_event_loop

    monkeypatch.undo()
    monkeypatch.setattr(sys, "platform", "win32")
    assert agent_command.event_loop_factory() is asyncio.new_event_loop


async def test_sigterm_fallback_without_loop_signal_handlers(monkeypatch):
    """Where the loop cannot watch signals (Windows), SIGTERM still stops the agent."""
    loop = asyncio.get_running_loop()

    def unsupported(*args):
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    stopped = asyncio.Event()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        agent_command._on_terminate(stopped.set)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stopped.wait(), WAIT)
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be delivered on Windows")
async def test_real_agent_connects_and_stops_cleanly_on_sigterm(gateway_factory, backend_factory):
    """The command connects, announces, logs without the token, and exits 0 on SIGTERM."""
    gateway = await gateway_factory(provider="brian-home")
    backend = await backend_factory("tiny-llm")
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "agent",
        "--server",
        gateway.url,
        "--backend",
        backend.url,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(INFERENCE_CLUB_TOKEN=TOKEN),
    )
    try:
        peer = await gateway.next_peer(timeout=30)
        assert [card.id for card in peer.hello.models] == ["tiny-llm"]
        relayed = await peer.collect(await peer.request("tiny-llm", body=b'{"model": "x"}'))
        assert relayed.response is not None
        assert relayed.response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    await asyncio.wait_for(peer.closed.wait(), WAIT)
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "msg=connected provider=brian-home models=1" in log
    assert "msg=request " in log
    assert "status=200" in log
    assert TOKEN not in log
