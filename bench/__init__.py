"""Benchmarks of the gateway and agent against a direct path and LiteLLM: ``python -m bench``."""
