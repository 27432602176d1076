from __future__ import annotations

import pytest

from core.errors import Busy
from core.llm.engine.scheduler import FairQueue


def test_flooding_guild_cannot_starve_another():
    queue: FairQueue[str] = FairQueue(max_total=100, max_per_guild=50)
    for n in range(10):
        queue.push("A", f"a{n}")
    position = queue.push("B", "b0")
    assert position == 2  # right after A's head, not after all ten
    assert [queue.pop() for _ in range(3)] == ["a0", "b0", "a1"]


def test_round_robin_order_matches_reported_positions():
    queue: FairQueue[str] = FairQueue(max_total=100, max_per_guild=50)
    for item in ["a0", "a1", "a2", "b0", "c0", "c1"]:
        queue.push(item[0], item)
    expected = queue.ordered()
    assert expected == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert [queue.pop() for _ in range(6)] == expected
    assert queue.pop() is None and len(queue) == 0


def test_full_queue_and_full_guild_lane_are_busy_errors():
    queue: FairQueue[str] = FairQueue(max_total=3, max_per_guild=2)
    queue.push("A", "a0")
    queue.push("A", "a1")
    with pytest.raises(Busy, match="This server already has 2"):
        queue.push("A", "a2")
    queue.push("B", "b0")
    with pytest.raises(Busy, match="busy"):
        queue.push("C", "c0")


def test_remove_cancels_a_waiting_item():
    queue: FairQueue[str] = FairQueue(max_total=10, max_per_guild=10)
    queue.push("A", "a0")
    queue.push("B", "b0")
    assert queue.remove("a0") is True
    assert queue.remove("a0") is False
    assert queue.ordered() == ["b0"] and len(queue) == 1
