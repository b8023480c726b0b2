"""llama.cpp with SmolLM2 as a demo backend: chat, streaming with usage, and cancellation."""

import time

import httpx
import pytest
from openai import OpenAI

from inference_club.demo.llm_server import smollm2_model_path

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Name three colours."}]


def test_the_gguf_ships_with_the_package():
    """The SmolLM2 GGUF is found in the installed package without importing it."""
    path = smollm2_model_path()
    assert path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"


def test_models_lists_the_alias(llm_server):
    """/v1/models announces the alias given on the command line."""
    client = OpenAI(base_url=llm_server.base_url, api_key="unused")
    assert [model.id for model in client.models.list().data] == ["tiny"]


def test_chat_completion_with_usage(llm_server):
    """A non-streamed chat answers with text, the alias as model, and token usage."""
    client = OpenAI(base_url=llm_server.base_url, api_key="unused")
    completion = client.chat.completions.create(
        model="any-name-works", messages=QUESTION, max_tokens=8
    )
    assert completion.model == "tiny"
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 5
    assert 1 <= completion.usage.completion_tokens <= 8
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_streamed_chat_ends_with_a_usage_chunk(llm_server):
    """With include_usage, content chunks are followed by one choice-less chunk carrying usage."""
    client = OpenAI(base_url=llm_server.base_url, api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=QUESTION,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens > 5
    content_chunks = sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content)
    assert content_chunks <= usage.completion_tokens <= 8


def test_closing_a_stream_stops_generation(llm_server):
    """A client that disconnects frees llama.cpp's slot at once instead of decoding on."""
    root = llm_server.base_url.removesuffix("/v1")
    body = {
        "model": "tiny",
        "messages": QUESTION,
        "max_tokens": 900,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{llm_server.base_url}/chat/completions", json=body, timeout=30
    ) as response:
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data:")
            if events == 3:
                assert httpx.get(f"{root}/slots", timeout=5).json()[0]["is_processing"]
                break
    deadline = time.monotonic() + 3
    while httpx.get(f"{root}/slots", timeout=5).json()[0]["is_processing"]:
        assert time.monotonic() < deadline, "the slot kept decoding for a client that left"
        time.sleep(0.05)
