"""Small measuring helpers shared by the benchmark's workers and its report.

Kept free of torch so the orchestrating process (and the unit tests) stay light.
"""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["StreamTiming", "peak_rss_mb", "loadavg", "median", "spread"]


@dataclass(frozen=True)
class StreamTiming:
    """One generation seen from the caller: when it started, first token, end, tokens."""

    started: float
    first: float  # absolute perf_counter() of the first token
    ended: float
    tokens: int
    text: str = ""
    finish_reason: str = "length"

    @property
    def ttft_s(self) -> float:
        return self.first - self.started

    @property
    def decode_tps(self) -> float:
        """Tokens after the first, per second of decoding (as ENGINE_FACTS.md measured it)."""
        span = self.ended - self.first
        return (self.tokens - 1) / span if self.tokens > 1 and span > 0 else 0.0

    @property
    def elapsed_s(self) -> float:
        return self.ended - self.started


def aggregate(timings: Iterable[StreamTiming]) -> dict[str, float | int]:
    """Concurrent requests: all tokens / wall time from the first start to the last end."""
    items = list(timings)
    start = min(t.started for t in items)
    end = max(t.ended for t in items)
    tokens = sum(t.tokens for t in items)
    ttfts = [t.ttft_s for t in items]
    return {
        "requests": len(items),
        "tokens": tokens,
        "min_tokens": min(t.tokens for t in items),
        "wall_s": end - start,
        "aggregate_tps": tokens / (end - start) if end > start else 0.0,
        "ttft_median_s": statistics.median(ttfts),
        "ttft_max_s": max(ttfts),
    }


def peak_rss_mb() -> float:
    """Peak resident set of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> float:
    """The 1-minute load average: how busy the shared host was while we measured."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Iterable[float | None]) -> tuple[float, float] | None:
    present = [v for v in values if v is not None]
    return (min(present), max(present)) if present else None
