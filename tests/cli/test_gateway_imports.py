"""The gateway's process loads the command line, never the agent's HTTP stack."""

import subprocess
import sys


def test_the_command_line_and_the_gateway_do_not_import_the_agents_http_stack() -> None:
    """`inference-club serve` imports every command's options and the gateway: none of that
    brings aiohttp or the running agent, which would only cost the gateway memory and longer
    garbage-collector passes."""
    probe = (
        "import sys, inference_club.cli.main, inference_club.gateway.server; "
        "heavy = {'aiohttp', 'yarl', 'aiohappyeyeballs'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
        "or m in ('inference_club.agent.core', 'inference_club.agent.tunnel')))"
    )
    result = subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
