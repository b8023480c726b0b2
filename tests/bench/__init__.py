"""Tests of the benchmark tooling in ``bench/``."""
