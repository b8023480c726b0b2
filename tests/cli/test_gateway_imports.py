"""What the gateway's process loads at start: the command line and the gateway, nothing more."""

import subprocess
import sys

# Loaded only where needed: the agent's HTTP stack by `inference-club agent`, FFmpeg by the
# first audio file that is not plain WAV, the PostgreSQL driver by a PostgreSQL database.
ON_DEMAND = ("aiohttp", "yarl", "av", "asyncpg")


def test_the_gateway_starts_without_what_it_loads_on_demand() -> None:
    """`inference-club serve` imports every command's options and the gateway; none of that
    brings the agent, FFmpeg or asyncpg, which would only cost the gateway memory (FFmpeg alone
    about 27 MB) and longer garbage-collector passes."""
    probe = (
        "import sys, inference_club.cli.main, inference_club.gateway.server; "
        f"heavy = {set(ON_DEMAND)!r}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
        "or m in ('inference_club.agent.core', 'inference_club.agent.tunnel')))"
    )
    result = subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
