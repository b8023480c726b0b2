"""The ``inference-club`` command line: gateway, agent and admin commands."""
