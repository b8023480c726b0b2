"""The agent's config file, its validation, and its merge with flags and env vars."""

from pathlib import Path

import pytest

from inference_club.agent import (
    AgentConfig,
    AgentSettings,
    BackendSettings,
    ConfigError,
    ModelSettings,
    build_settings,
    load_config,
    parse_config,
)

EXAMPLE = """
server = "https://club.example.org"
token = "file-token"
log_level = "debug"
rediscover_interval = 10

[[backends]]
url = "http://127.0.0.1:8080/v1/"
api_key = "llama-key"

[[backends]]
url = "http://127.0.0.1:9000/v1"
models = ["whisper-small"]
service_type = "stt"

[models."qwen-7b"]
service_type = "llm"
context_length = 32768
max_concurrency = 4
supported_features = ["tools", "reasoning"]
input_modalities = ["text", "image"]
share = ["network", "group:friends"]

[models."piper"]
service_type = "tts"
voices = ["joe"]
share = ["private"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_read_in_full(tmp_path):
    """Every documented key lands in the config, with URLs normalized."""
    config = load_config(write(tmp_path, EXAMPLE))

    assert config.server == "https://club.example.org"
    assert config.token == "file-token"
    assert config.log_level == "debug"
    assert config.rediscover_interval == 10.0
    assert config.backends == (
        BackendSettings("http://127.0.0.1:8080/v1", api_key="llama-key"),
        BackendSettings("http://127.0.0.1:9000/v1", models=("whisper-small",), service_type="stt"),
    )
    assert config.backends[0].api_key == "llama-key"
    assert config.models["qwen-7b"] == ModelSettings(
        service_type="llm",
        context_length=32768,
        max_concurrency=4,
        supported_features=("tools", "reasoning"),
        input_modalities=("text", "image"),
        share=("network", "group:friends"),
    )
    assert config.models["piper"].voices == ("joe",)


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ('servre = "x"', "servre"),
        ("rediscover_interval = -1", "rediscover_interval"),
        ('log_level = "loud"', "log_level"),
        ("backends = 3", "backends"),
        ("[[backends]]\napi_key = 'k'", "backends[0].url"),
        ("[[backends]]\nurl = 'ftp://host/v1'", "backends[0].url"),
        ("[[backends]]\nurl = 'http://h/v1'\nmodel = ['x']", "backends[0].model"),
        ("[[backends]]\nurl = 'http://h/v1'\nservice_type = 'video'", "backends[0].service_type"),
        ("[[backends]]\nurl = 'http://h/v1'\nmodels = 'x'", "backends[0].models"),
        ('[models."m"]\nshare = ["everyone"]', 'models."m".share'),
        ('[models."m"]\nshare = ["group:"]', 'models."m".share'),
        ('[models."m"]\ncontext_length = 0', 'models."m".context_length'),
        ('[models."m"]\nmax_concurrency = true', 'models."m".max_concurrency'),
        ('[models."m"]\nservice_type = "chat"', 'models."m".service_type'),
        ('[models."m"]\nalias = "n"', 'models."m".alias'),
        ('[models."m"]\nvoices = [1]', 'models."m".voices'),
    ],
)
def test_invalid_entries_name_the_file_and_the_key(tmp_path, text, offending):
    """Each validation error says which file and which key is wrong."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}: {offending}:")


def test_secrets_stay_out_of_errors_and_reprs():
    """An invalid backend URL with credentials, and a settings repr, never show secrets."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"backends": [{"url": "ftp://user:hunter2@host/v1"}]})
    assert "hunter2" not in str(caught.value)

    settings = AgentSettings(
        "https://club.example.org",
        "tok-secret",
        backends=(BackendSettings("http://127.0.0.1:8080/v1", api_key="key-secret"),),
    )
    assert "tok-secret" not in repr(settings)
    assert "key-secret" not in repr(settings)


def test_unreadable_and_malformed_files_are_config_errors(tmp_path):
    """A missing file or broken TOML is reported with the path."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "server = "))


def test_flags_override_the_file_and_flag_backends_come_first(tmp_path):
    """Flags win; a flag backend the file also lists keeps the file's key and models."""
    config = load_config(write(tmp_path, EXAMPLE))

    settings = build_settings(
        config,
        server="http://127.0.0.1:8000",
        token="flag-token",
        backend_urls=["http://127.0.0.1:9000/v1/", "http://127.0.0.1:7000/v1"],
        rediscover_interval=None,
    )

    assert settings.server_url == "http://127.0.0.1:8000"
    assert settings.token == "flag-token"
    assert [backend.url for backend in settings.backends] == [
        "http://127.0.0.1:9000/v1",
        "http://127.0.0.1:7000/v1",
        "http://127.0.0.1:8080/v1",
    ]
    assert settings.backends[0].models == ("whisper-small",)
    assert settings.backends[2].api_key == "llama-key"
    assert settings.rediscover_interval == 10.0
    assert settings.models["qwen-7b"].context_length == 32768


def test_file_alone_is_enough(tmp_path):
    """With no flags, the file's server, token and backends are used."""
    settings = build_settings(
        load_config(write(tmp_path, EXAMPLE)), server=None, token=None, backend_urls=[]
    )

    assert settings.token == "file-token"
    assert settings.tunnel_url == "wss://club.example.org/api/tunnel"
    assert len(settings.backends) == 2


@pytest.mark.parametrize(
    ("server", "token", "backends", "message"),
    [
        (None, "t", ["http://127.0.0.1:8080/v1"], "no gateway"),
        ("http://gw", None, ["http://127.0.0.1:8080/v1"], "no provider token"),
        ("http://gw", "t", [], "no backends"),
        ("ftp://gw", "t", ["http://127.0.0.1:8080/v1"], "server must be"),
    ],
)
def test_missing_essentials_are_config_errors(server, token, backends, message):
    """Server, token and at least one backend are required, each with its own message."""
    with pytest.raises(ConfigError, match=message):
        build_settings(AgentConfig(), server=server, token=token, backend_urls=backends)


@pytest.mark.parametrize(
    ("server", "tunnel"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/tunnel"),
        ("https://club.example.org/", "wss://club.example.org/api/tunnel"),
        ("https://example.org/club", "wss://example.org/club/api/tunnel"),
        ("wss://club.example.org", "wss://club.example.org/api/tunnel"),
        ("ws://127.0.0.1:8000/api/tunnel", "ws://127.0.0.1:8000/api/tunnel"),
    ],
)
def test_server_url_maps_to_the_tunnel_endpoint(server, tunnel):
    """http maps to ws and https to wss, under any path prefix."""
    assert AgentSettings(server, "t").tunnel_url == tunnel


def test_server_url_with_credentials_is_refused():
    """Credentials belong in the token, never in a URL that might be logged."""
    with pytest.raises(ConfigError, match="must not carry credentials"):
        AgentSettings("https://user:pw@club.example.org", "t")
