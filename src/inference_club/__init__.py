"""inference-club: share home GPUs through one OpenAI-compatible API."""

__version__ = "0.1.0"
