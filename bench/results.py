"""What a benchmark run produces: measurements per scenario step and path, and target checks."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.loadgen import LoadSummary
from bench.procstat import Usage

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Measurement:
    """One step of one scenario on one path."""

    scenario: str
    step: str
    # The step's number (rate, streams, agents, models) for sorting and lookups.
    value: float
    path: str
    summary: LoadSummary | None = None
    usage: Mapping[str, Usage] = field(default_factory=dict)
    extra: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None

    def cpu_percent(self, process: str) -> float | None:
        """CPU use of one process tree during the step, in percent of one core."""
        usage = self.usage.get(process)
        return usage.cpu_percent if usage is not None else None

    def waiting_percent(self, process: str) -> float | None:
        """Time one process tree spent ready to run but waiting for a core during the step, in
        percent of the step."""
        usage = self.usage.get(process)
        return usage.waiting_percent if usage is not None else None

    def cpu_us_per_request(self, process: str) -> float | None:
        """CPU time of one process tree per request of the step (per stream, for streams)."""
        usage = self.usage.get(process)
        if usage is None or self.summary is None or not self.summary.requests:
            return None
        return usage.cpu_seconds * 1e6 / self.summary.requests

    def peak_mb(self, process: str) -> float | None:
        """Peak resident memory of one process tree during the step."""
        usage = self.usage.get(process)
        return usage.peak_rss / MB if usage is not None else None

    def peak_rise_mb(self, process: str) -> float | None:
        """How far one process tree's peak resident memory rose above where the step began."""
        usage = self.usage.get(process)
        return (usage.peak_rss - usage.rss_start) / MB if usage is not None else None


@dataclass(frozen=True, slots=True)
class Check:
    """One target from the issue, checked against this run."""

    target: str
    measured: str
    passed: bool | None
    # The same figure for LiteLLM and for the bare relay, for comparison; empty when not measured.
    litellm: str = ""
    bare_relay: str = ""


def find(
    measurements: Sequence[Measurement], scenario: str, path: str, value: float | None = None
) -> Measurement | None:
    """The measurement of ``scenario`` on ``path`` (at step ``value``), if there is one."""
    for measurement in measurements:
        if (
            measurement.scenario == scenario
            and measurement.path == path
            and (value is None or measurement.value == value)
        ):
            return measurement
    return None
