import asyncio
import time

from inference_club.slices import map_in_slices


async def test_results_come_back_in_order() -> None:
    assert await map_in_slices(lambda n: n * n, range(6)) == [0, 1, 4, 9, 16, 25]


async def test_the_loop_runs_between_slices_once_the_budget_is_spent() -> None:
    seen: list[str] = []
    loop = asyncio.get_running_loop()

    def slow(item: int) -> int:
        seen.append(f"item {item}")
        loop.call_soon(seen.append, f"turn after {item}")
        time.sleep(0.002)
        return item

    await map_in_slices(slow, range(3), budget=0.001)

    # Each item overran the budget, so the callback it scheduled ran before the next item.
    assert seen == [
        "item 0",
        "turn after 0",
        "item 1",
        "turn after 1",
        "item 2",
        "turn after 2",
    ]


async def test_work_within_the_budget_does_not_yield() -> None:
    seen: list[str] = []
    loop = asyncio.get_running_loop()

    def quick(item: int) -> int:
        seen.append(f"item {item}")
        loop.call_soon(seen.append, f"turn after {item}")
        return item

    await map_in_slices(quick, range(3), budget=60.0)

    assert seen == ["item 0", "item 1", "item 2"]
    await asyncio.sleep(0)
    assert seen[3:] == ["turn after 0", "turn after 1", "turn after 2"]
