"""The SSE usage tap: records the usage chunk, strips it when the client did not ask, and
passes every other event through as it came."""

import orjson
import pytest

from inference_club.gateway.sse import UsageTap

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def event(document: dict[str, object], *, spaced: bool = False) -> bytes:
    payload = orjson.dumps(document)
    if spaced:
        payload = payload.replace(b'"usage":null', b'"usage": null')
    return b"data: " + payload + b"\n\n"


def content(text: str, usage: object = None) -> dict[str, object]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"delta": {"content": text}}],
        "usage": usage,
    }


@pytest.mark.parametrize("spaced", [False, True])
def test_chunks_saying_usage_null_pass_through_untouched(spaced: bool) -> None:
    tap = UsageTap(strip_usage=True)
    chunks = [event(content(f"t{index}"), spaced=spaced) for index in range(3)]
    assert [tap.feed(chunk) for chunk in chunks] == chunks
    assert tap.usage is None


@pytest.mark.parametrize("strip", [True, False])
def test_the_usage_chunk_is_recorded_and_stripped_only_when_not_asked_for(strip: bool) -> None:
    tap = UsageTap(strip_usage=strip)
    before = event(content("last"))
    final = event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    done = b"data: [DONE]\n\n"
    out = tap.feed(before + final) + tap.feed(done) + tap.flush()
    assert tap.usage == USAGE
    assert out == (before + done if strip else before + final + done)


def test_usage_on_a_chunk_with_content_is_removed_and_the_content_kept() -> None:
    tap = UsageTap(strip_usage=True)
    out = tap.feed(event(content("end", USAGE)))
    assert tap.usage == USAGE
    kept = orjson.loads(out.removeprefix(b"data: "))
    assert kept["choices"][0]["delta"]["content"] == "end"
    assert "usage" not in kept


def test_an_event_split_across_reads_is_held_until_whole() -> None:
    tap = UsageTap(strip_usage=True)
    final = event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    assert tap.feed(final[:20]) == b""
    assert tap.feed(final[20:]) == b""
    assert tap.usage == USAGE
