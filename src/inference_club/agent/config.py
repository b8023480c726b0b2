"""The agent's TOML config file, validated key by key, and its merge with flags and env vars.

Example::

    server = "https://club.example.org"
    token = "..."                      # or INFERENCE_CLUB_TOKEN, which keeps it out of the file

    [[backends]]
    url = "http://127.0.0.1:8080/v1"   # the server's OpenAI base URL
    api_key = "..."                    # sent to that server only, as Authorization: Bearer

    [[backends]]
    url = "http://127.0.0.1:9000/v1"
    models = ["whisper-small"]         # for servers without GET /models
    service_type = "stt"

    [models."qwen2.5-7b-instruct"]
    context_length = 32768
    max_concurrency = 4
    supported_features = ["tools"]
    share = ["network"]                # or ["private"], ["group:friends"]
"""

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from inference_club.agent.errors import ConfigError
from inference_club.agent.settings import AgentSettings, BackendSettings, ModelSettings
from inference_club.protocol import SERVICE_TYPES

_TOP_LEVEL_KEYS = frozenset(
    {
        "server",
        "token",
        "log_level",
        "rediscover_interval",
        "guest_concurrency",
        "backends",
        "models",
    }
)
_BACKEND_KEYS = frozenset({"url", "api_key", "models", "service_type"})
_MODEL_KEYS = frozenset(ModelSettings.__dataclass_fields__)
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What a config file sets; ``None`` where it is silent."""

    server: str | None = None
    token: str | None = field(default=None, repr=False)
    log_level: str | None = None
    rediscover_interval: float | None = None
    guest_concurrency: int | None = None
    backends: tuple[BackendSettings, ...] = ()
    models: Mapping[str, ModelSettings] = field(default_factory=dict)


def load_config(path: Path) -> AgentConfig:
    """Read and validate a config file; every problem names the file and the offending key."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        msg = f"{path}: cannot read config file ({exc.strerror or exc})"
        raise ConfigError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise ConfigError(msg) from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_config(data: Mapping[str, Any]) -> AgentConfig:
    """Validate the parsed TOML document."""
    _reject_unknown(data, _TOP_LEVEL_KEYS, "")
    interval = data.get("rediscover_interval")
    if interval is not None and (not _is_number(interval) or interval <= 0):
        _fail("rediscover_interval", "must be a positive number of seconds")
    guests = data.get("guest_concurrency")
    if guests is not None and (
        not isinstance(guests, int) or isinstance(guests, bool) or guests < 0
    ):
        _fail("guest_concurrency", "must be a whole number of requests, 0 or more")
    log_level = _optional_string(data, "log_level", "log_level")
    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        _fail("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    backends = data.get("backends", [])
    if not isinstance(backends, list):
        _fail("backends", "must be an array of tables ([[backends]])")
    models = data.get("models", {})
    if not isinstance(models, dict):
        _fail("models", 'must be a table of tables ([models."<id>"])')
    return AgentConfig(
        server=_optional_string(data, "server", "server"),
        token=_optional_string(data, "token", "token"),
        log_level=log_level,
        rediscover_interval=float(interval) if interval is not None else None,
        guest_concurrency=guests,
        backends=tuple(_backend(item, f"backends[{i}]") for i, item in enumerate(backends)),
        models={str(model_id): _model(value, model_id) for model_id, value in models.items()},
    )


def build_settings(
    config: AgentConfig,
    *,
    server: str | None,
    token: str | None,
    backend_urls: Sequence[str],
    rediscover_interval: float | None = None,
) -> AgentSettings:
    """Merge flags and env vars (given here) over the config file; flags win.

    Backends from flags come first, so they win when two servers offer the same model; a flag
    naming a backend the file also lists gets the file's api_key and models.
    """
    server = server or config.server
    if not server:
        msg = "no gateway given: pass --server URL, set INFERENCE_CLUB_SERVER or `server`"
        raise ConfigError(msg)
    token = token or config.token
    if not token:
        msg = "no provider token given: set INFERENCE_CLUB_TOKEN, pass --token or set `token`"
        raise ConfigError(msg)
    from_file = {backend.url: backend for backend in config.backends}
    backends: list[BackendSettings] = []
    for url in backend_urls:
        backend = BackendSettings(url.strip())
        backends.append(from_file.pop(backend.url, backend))
    backends.extend(from_file.values())
    if not backends:
        msg = "no backends: pass --backend URL (e.g. http://127.0.0.1:8080/v1) or add [[backends]]"
        raise ConfigError(msg)
    interval = rediscover_interval or config.rediscover_interval or 30.0
    return AgentSettings(
        server_url=server,
        token=token,
        backends=_unique(backends),
        models=config.models,
        rediscover_interval=interval,
        guest_concurrency=config.guest_concurrency,
    )


def _unique(backends: Iterable[BackendSettings]) -> tuple[BackendSettings, ...]:
    seen: dict[str, BackendSettings] = {}
    for backend in backends:
        seen.setdefault(backend.url, backend)
    return tuple(seen.values())


def _backend(value: Any, where: str) -> BackendSettings:
    if not isinstance(value, dict):
        _fail(where, "must be a table with at least `url`")
    _reject_unknown(value, _BACKEND_KEYS, where)
    url = _optional_string(value, "url", f"{where}.url")
    if url is None:
        _fail(f"{where}.url", "is required")
    service_type = _optional_string(value, "service_type", f"{where}.service_type")
    if service_type is not None and service_type not in SERVICE_TYPES:
        _fail(f"{where}.service_type", f"must be one of {', '.join(SERVICE_TYPES)}")
    api_key = _optional_string(value, "api_key", f"{where}.api_key")
    models = _strings(value, "models", f"{where}.models") or ()
    try:
        return BackendSettings(url, api_key=api_key, models=models, service_type=service_type)
    except ConfigError as exc:
        raise ConfigError(f"{where}.url: {exc}") from None


def _model(value: Any, model_id: str) -> ModelSettings:
    where = f'models."{model_id}"'
    if not isinstance(value, dict):
        _fail(where, "must be a table")
    _reject_unknown(value, _MODEL_KEYS, where)
    service_type = _optional_string(value, "service_type", f"{where}.service_type")
    if service_type is not None and service_type not in SERVICE_TYPES:
        _fail(f"{where}.service_type", f"must be one of {', '.join(SERVICE_TYPES)}")
    share = _strings(value, "share", f"{where}.share")
    for entry in share or ():
        if entry not in ("private", "network") and not (
            entry.startswith("group:") and len(entry) > len("group:")
        ):
            _fail(f"{where}.share", f'{entry!r} is not "private", "network" or "group:NAME"')
    return ModelSettings(
        service_type=service_type,
        input_modalities=_strings(value, "input_modalities", f"{where}.input_modalities"),
        output_modalities=_strings(value, "output_modalities", f"{where}.output_modalities"),
        supported_features=_strings(value, "supported_features", f"{where}.supported_features"),
        context_length=_positive_int(value, "context_length", f"{where}.context_length"),
        max_concurrency=_positive_int(value, "max_concurrency", f"{where}.max_concurrency"),
        voices=_strings(value, "voices", f"{where}.voices"),
        share=share,
    )


def _reject_unknown(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for key in table:
        if key not in known:
            name = f"{where}.{key}" if where else key
            _fail(name, f"unknown key (expected one of {', '.join(sorted(known))})")


def _optional_string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        _fail(where, "must be a non-empty string")
    return value


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        _fail(where, "must be a list of non-empty strings")
    return tuple(value)


def _positive_int(table: Mapping[str, Any], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        _fail(where, "must be a positive integer")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fail(where: str, problem: str) -> NoReturn:
    raise ConfigError(f"{where}: {problem}")
