"""What an agent announces about each model it serves."""

from dataclasses import dataclass, field
from typing import Any

from inference_club.protocol.errors import ProtocolError

SERVICE_TYPES = ("llm", "stt", "tts", "image")

_DEFAULT_MODALITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "llm": (("text",), ("text",)),
    "stt": (("audio",), ("text",)),
    "tts": (("text",), ("audio",)),
    "image": (("text",), ("image",)),
}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """One model as announced by a provider; the gateway serves these fields on /v1/models."""

    id: str
    service_type: str = "llm"
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()
    supported_features: tuple[str, ...] = ()
    context_length: int | None = None
    # How many requests the provider takes at once for this model.
    max_concurrency: int = 8
    voices: tuple[str, ...] = ()
    # Sharing as the owner set it in the agent config: "private", "network" or "group:NAME".
    visibility: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.service_type not in SERVICE_TYPES:
            msg = f"model {self.id!r}: service_type must be one of {', '.join(SERVICE_TYPES)}"
            raise ValueError(msg)
        if not self.id or len(self.id) > 256:
            msg = "model id must be 1 to 256 characters"
            raise ValueError(msg)
        if self.max_concurrency < 1:
            msg = f"model {self.id!r}: max_concurrency must be at least 1"
            raise ValueError(msg)
        inputs, outputs = _DEFAULT_MODALITIES[self.service_type]
        if not self.input_modalities:
            object.__setattr__(self, "input_modalities", inputs)
        if not self.output_modalities:
            object.__setattr__(self, "output_modalities", outputs)

    def to_json(self) -> dict[str, Any]:
        """The card as a JSON-ready dict."""
        return {
            "id": self.id,
            "service_type": self.service_type,
            "input_modalities": list(self.input_modalities),
            "output_modalities": list(self.output_modalities),
            "supported_features": list(self.supported_features),
            "context_length": self.context_length,
            "max_concurrency": self.max_concurrency,
            "voices": list(self.voices),
            "visibility": list(self.visibility),
        }

    @classmethod
    def from_json(cls, data: Any) -> "ModelCard":
        """Parse a card sent by a peer; anything malformed is a ProtocolError."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            msg = "model card must be an object with a string id"
            raise ProtocolError(msg)
        try:
            context_length = data.get("context_length")
            return cls(
                id=data["id"],
                service_type=str(data.get("service_type", "llm")),
                input_modalities=_strings(data.get("input_modalities")),
                output_modalities=_strings(data.get("output_modalities")),
                supported_features=_strings(data.get("supported_features")),
                context_length=int(context_length) if context_length is not None else None,
                max_concurrency=int(data.get("max_concurrency", 8)),
                voices=_strings(data.get("voices")),
                visibility=_strings(data.get("visibility")),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"bad model card: {exc}") from exc


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = "expected a list of strings"
        raise TypeError(msg)
    return tuple(value)
