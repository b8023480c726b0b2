"""Fixtures every test package may use."""

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def without_the_cycle_collector() -> Iterator[None]:
    """Garbage collected only by reference counts: what a reference cycle holds stays."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
