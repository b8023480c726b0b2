"""Startup objects kept out of full collections, full collections spaced out, and the
gateway's hook that does it."""

import gc
from pathlib import Path

from starlette.testclient import TestClient

from inference_club.gateway import GatewaySettings
from inference_club.gateway.app import GatewayApp, create_app
from inference_club.heap import (
    FULL_COLLECTION_EVERY,
    freeze_startup_objects,
    space_out_full_collections,
)


def test_freezing_moves_live_objects_out_of_collections_and_drops_garbage() -> None:
    """Live objects land in the permanent generation; unreachable cycles are collected first."""
    collected: list[str] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            collected.append("cycle")

    Cycle()  # unreachable at once, kept alive only by its own cycle
    kept = [object()]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert collected == ["cycle"]
        assert gc.is_tracked(kept)
        assert all(kept is not obj for generation in range(3) for obj in gc.get_objects(generation))
    finally:
        gc.unfreeze()


def test_full_collections_are_spaced_out_and_young_ones_left_as_they_are() -> None:
    """Only the old generation's threshold changes."""
    before = gc.get_threshold()
    try:
        space_out_full_collections()
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
    finally:
        gc.set_threshold(*before)


def test_gateway_runs_its_after_startup_hook_once_services_are_up(tmp_path: Path) -> None:
    """The hook runs once, after the store and the other services exist, before requests."""
    seen: list[bool] = []
    app: GatewayApp | None = None

    def hook() -> None:
        assert app is not None
        seen.append(app.services().store is not None)

    app = create_app(GatewaySettings(data_dir=tmp_path), after_startup=hook)
    with TestClient(app) as client:
        assert seen == [True]
        assert client.get("/healthz").status_code == 200
    assert seen == [True]
