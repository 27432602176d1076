"""Fair waiting room for generation requests: one FIFO per guild, served round-robin.

A guild that floods the queue only lengthens its own line: every other guild with a waiting
request is served before the flooding guild gets its second slot. Bounded in total and per
guild, so overload becomes a clear `Busy` error instead of an ever-growing queue.
Thread-safe: the event loop submits, the engine thread admits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from core.errors import Busy

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-guild FIFOs; `pop()` takes the head of the guild whose turn it is."""

    def __init__(self, max_total: int, max_per_guild: int) -> None:
        self.max_total = max_total
        self.max_per_guild = max_per_guild
        self._lock = threading.Lock()
        # Guild order is the round-robin order: the head guild is served next, then moves
        # to the back if it still has requests waiting.
        self._lanes: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, lane: Hashable, item: T) -> int:
        """Queue `item` in `lane`; return its 1-based position. Raise Busy when full."""
        with self._lock:
            if self._size >= self.max_total:
                raise Busy(
                    f"Guru is busy: {self._size} requests are already waiting. "
                    "Please try again in a minute."
                )
            queue = self._lanes.get(lane)
            if queue is not None and len(queue) >= self.max_per_guild:
                raise Busy(
                    f"This server already has {len(queue)} requests waiting; "
                    "please wait for some of them to finish."
                )
            if queue is None:
                queue = self._lanes[lane] = deque()
            queue.append(item)
            self._size += 1
            return self._order().index(item) + 1

    def pop(self) -> T | None:
        """The next item in fair order, or None when nothing waits."""
        with self._lock:
            if not self._lanes:
                return None
            lane, queue = next(iter(self._lanes.items()))
            item = queue.popleft()
            self._size -= 1
            del self._lanes[lane]
            if queue:  # back of the line for this guild's next request
                self._lanes[lane] = queue
            return item

    def remove(self, item: T) -> bool:
        """Drop a waiting item (cancelled before it started). True if it was waiting."""
        with self._lock:
            for lane, queue in self._lanes.items():
                if item in queue:
                    queue.remove(item)
                    self._size -= 1
                    if not queue:
                        del self._lanes[lane]
                    return True
            return False

    def ordered(self) -> list[T]:
        """Waiting items in the order they would be admitted (position = index + 1)."""
        with self._lock:
            return self._order()

    def _order(self) -> list[T]:
        # Simulate round-robin: round r takes the r-th item of every lane, in lane order.
        lanes = [list(q) for q in self._lanes.values()]
        order: list[T] = []
        for r in range(max((len(q) for q in lanes), default=0)):
            order.extend(q[r] for q in lanes if r < len(q))
        return order
