"""Target checks against direct in the same run, and the Markdown report built from them."""

import dataclasses

import orjson
from bench.loadgen import LoadSummary
from bench.procstat import Usage
from bench.report import RunInfo, markdown, write
from bench.results import MB, Measurement
from bench.stats import distribution
from bench.targets import evaluate


def summary(p50: float, p99: float, errors: int = 0, requests: int = 1000) -> LoadSummary:
    latency = distribution([p50] * 50 + [p99] * 50)
    return LoadSummary(
        requests=requests,
        ok=requests - errors,
        errors=errors,
        error_samples=("HTTP 502: bad",) if errors else (),
        achieved_rate=1000.0,
        span_s=1.0,
        latency_ms=latency,
        service_ms=latency,
        ttfb_ms=latency,
        gap_ms=distribution([20.0]),
        chunks=0,
        chunks_per_s=0.0,
        peak_connections=10,
        max_dispatch_lag_ms=0.1,
        loadgen_cpu_s=0.1,
    )


def chat(path: str, p50: float, p99: float, errors: int = 0) -> Measurement:
    return Measurement("chat", "1000 req/s", 1000, path, summary(p50, p99, errors))


def check(measurements: list[Measurement], part: str):
    return next(c for c in evaluate(measurements) if part in c.target)


def test_added_latency_is_gateway_minus_direct():
    """The added p50 and p99 are differences from direct at the same rate, met or missed."""
    runs = [chat("direct", 1.0, 3.0), chat("gateway", 1.4, 6.0), chat("litellm", 9.0, 30.0)]
    p50 = check(runs, "non-streamed 1,000 req/s: added p50")
    p99 = check(runs, "non-streamed 1,000 req/s: added p99")
    assert p50.passed is True
    assert p50.measured.startswith("+0.40 ms")
    assert p50.litellm.startswith("+8.00 ms")
    assert p99.passed is False
    assert p99.measured.startswith("+3.00 ms")


def test_the_bare_relay_is_shown_beside_the_gateway_but_never_judged():
    """The bare relay's figures fill the reference column; the verdict is the gateway's."""
    runs = [
        chat("direct", 1.0, 3.0),
        chat("gateway", 2.0, 6.0),
        chat("bare-relay", 1.2, 3.5),
        Measurement("max-rate", "p99", 0, "direct", extra={"max_rate": 3000.0, "capped": 0.0}),
        Measurement("max-rate", "p99", 0, "gateway", extra={"max_rate": 900.0, "capped": 0.0}),
        Measurement("max-rate", "p99", 0, "bare-relay", extra={"max_rate": 2700.0}),
    ]
    p50 = check(runs, "non-streamed 1,000 req/s: added p50")
    assert p50.passed is False
    assert p50.bare_relay.startswith("+0.20 ms")
    assert p50.litellm == ""
    rate = check(runs, "highest rate")
    assert rate.passed is False
    assert rate.bare_relay.startswith("2,700 req/s = 90% of direct 3,000")
    info = RunInfo("2026-01-01 00:00 UTC", "full", 2, "3.11", {"direct": "ready"}, ())
    text = markdown(info, runs, evaluate(runs))
    assert "| bare relay (reference) |" in text
    assert "| +1.00 ms (2.00 vs direct 1.00) | n/a | +0.20 ms (1.20 vs direct 1.00) |" in text


def test_cpu_per_request_is_each_process_trees_cpu_over_the_steps_requests():
    """2 s of gateway CPU over 1,000 requests is 2,000 µs each; it shows in the chat table."""
    usage = {"gateway": Usage(2.0, 50.0, 0, 0, 0), "agent": Usage(0.5, 20.0, 0, 0, 0)}
    row = Measurement("chat", "1000 req/s", 1000, "gateway", summary(1.0, 2.0), usage)
    assert row.cpu_us_per_request("gateway") == 2000
    assert row.cpu_us_per_request("agent") == 500
    assert row.cpu_us_per_request("litellm") is None
    info = RunInfo("2026-01-01 00:00 UTC", "full", 2, "3.11", {"direct": "ready"}, ())
    text = markdown(info, [chat("direct", 1.0, 3.0), row], [])
    assert "| gateway 2000 µs, agent 500 µs |" in text


def test_a_step_with_many_errors_misses_whatever_its_latency():
    """Fast failures are not fast answers: over 1 % errors misses the target."""
    runs = [chat("direct", 1.0, 3.0), chat("gateway", 1.0, 3.0, errors=50)]
    result = check(runs, "non-streamed 1,000 req/s: added p50")
    assert result.passed is False
    assert "50/1000 failed" in result.measured


def test_unmeasured_targets_say_so():
    """Without a gateway measurement a target is neither met nor missed."""
    result = check([chat("direct", 1.0, 3.0)], "non-streamed 1,000 req/s: added p50")
    assert result.passed is None
    assert result.measured == "not measured"


def test_rate_ratio_and_memory_targets():
    """Max rate is compared as a share of direct; idle memory per agent against 40 KB."""
    runs = [
        Measurement("max-rate", "p99", 0, "direct", extra={"max_rate": 3000.0, "capped": 0.0}),
        Measurement("max-rate", "p99", 0, "gateway", extra={"max_rate": 1500.0, "capped": 0.0}),
        Measurement("idle", "1000 agents", 1000, "gateway", extra={"per_agent_kb": 31.5}),
        Measurement(
            "hold",
            "2000 streams",
            2000,
            "gateway",
            usage={"gateway": Usage(1.0, 50.0, 100 * MB, 120 * MB, 350 * MB)},
        ),
    ]
    rate = check(runs, "highest rate")
    assert rate.passed is False
    assert "50% of direct 3,000" in rate.measured
    assert check(runs, "idle agents").passed is True
    held = check(runs, "2,000 slow streams")
    assert held.passed is False
    assert held.measured.startswith("350 MB")


def test_markdown_report_has_targets_and_tables():
    """The report shows the run, the target verdicts and one table row per path and step."""
    runs = [chat("direct", 1.0, 3.0), chat("gateway", 1.4, 6.0)]
    info = RunInfo("2026-01-01 00:00 UTC", "quick", 2, "3.11", {"direct": "ready"}, ("a note",))
    text = markdown(info, runs, evaluate(runs))
    assert "## Targets" in text
    assert "| non-streamed 1,000 req/s: added p50 ≤ 0.5 ms | +0.40 ms" in text
    assert "| 1000 req/s | gateway | 1000/0 |" in text
    assert "- a note" in text


def test_failed_uploads_miss_the_upload_target_with_the_reason():
    """An upload the gateway refused misses the target and says why."""
    runs = [
        Measurement("upload", "#1", 1, "direct", extra={"seconds": 0.02}),
        Measurement("upload", "#1", 1, "gateway", error="HTTP 404: no route"),
        Measurement("upload", "#1", 1, "litellm", extra={"litellm_rise_mb": 12.5}),
    ]
    result = check(runs, "10 MB upload")
    assert result.passed is False
    assert "HTTP 404" in result.measured
    assert result.litellm == "+12.5 MB"


def test_upload_within_two_megabytes_meets_the_target():
    """A gateway peak rise under 2 MB across every attempt meets the upload target."""
    runs = [
        Measurement("upload", "#1", 1, "gateway", extra={"gateway_rise_mb": 0.4}),
        Measurement("upload", "#2", 2, "gateway", extra={"gateway_rise_mb": 1.2}),
    ]
    result = check(runs, "10 MB upload")
    assert result.passed is True
    assert result.measured == "+1.2 MB"


def test_report_files_are_written_and_missing_figures_are_null(tmp_path):
    """write() makes results.md and a JSON file where unmeasured figures are null, not NaN."""
    no_gaps = dataclasses.replace(summary(1.0, 2.0), gap_ms=distribution([]))
    runs = [Measurement("streams", "100 streams", 100, "direct", no_gaps)]
    info = RunInfo("2026-01-01 00:00 UTC", "quick", 2, "3.11", {"direct": "ready"}, ())
    md_path, json_path = write(tmp_path, info, runs, evaluate(runs))
    document = orjson.loads(json_path.read_bytes())
    assert md_path.read_text().startswith("# inference-club benchmark")
    assert document["run"]["mode"] == "quick"
    assert document["measurements"][0]["summary"]["ok"] == 1000
    assert document["measurements"][0]["summary"]["gap_ms"]["p50"] is None
    assert all(check["passed"] is None for check in document["targets"])
