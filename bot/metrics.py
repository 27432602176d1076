"""Prometheus metrics of the bot on GURU_METRICS_PORT: requests, latency, queue depth, tokens.

A few counters and one histogram don't justify a dependency: this writes the Prometheus text
exposition format itself and serves it with aiohttp (already here for discord.py). Model
gauges are read from `LLMBackend.stats()` at scrape time, so nothing polls in the background.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

from aiohttp import web

from core.llm.types import BackendStats

__all__ = ["Metrics"]

log = logging.getLogger(__name__)

BUCKETS_S = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
STALE_S = 15 * 60  # an interaction token's lifetime; older start times are dropped


class Metrics:
    """Command counters and latency histogram, plus the model's live stats."""

    def __init__(self, llm_stats: Callable[[], BackendStats | None] = lambda: None) -> None:
        self.llm_stats = llm_stats
        self.commands: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}  # command -> bucket counts (+Inf last)
        self.latency_sum: dict[str, float] = defaultdict(float)
        self._started: dict[int, float] = {}
        self._runner: web.AppRunner | None = None

    def started(self, interaction_id: int) -> None:
        now = time.monotonic()
        if len(self._started) > 10_000:
            self._started = {k: t for k, t in self._started.items() if now - t < STALE_S}
        self._started[interaction_id] = now

    def finished(self, interaction_id: int, command: str, outcome: str) -> None:
        """Count one command run (outcome: ok / refused / error) and its latency."""
        self.commands[(command, outcome)] += 1
        start = self._started.pop(interaction_id, None)
        if start is None:
            return
        seconds = time.monotonic() - start
        counts = self.latency.setdefault(command, [0] * (len(BUCKETS_S) + 1))
        for i, bound in enumerate((*BUCKETS_S, float("inf"))):
            if seconds <= bound:
                counts[i] += 1
        self.latency_sum[command] += seconds

    def render(self) -> str:
        lines = [
            "# HELP guru_commands_total Slash commands run, by outcome.",
            "# TYPE guru_commands_total counter",
        ]
        for (command, outcome), n in sorted(self.commands.items()):
            lines.append(f'guru_commands_total{{command="{command}",outcome="{outcome}"}} {n}')
        lines += [
            "# HELP guru_command_seconds Time from receiving a command to its last reply.",
            "# TYPE guru_command_seconds histogram",
        ]
        for command, counts in sorted(self.latency.items()):
            for bound, n in zip((*BUCKETS_S, float("inf")), counts):
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'guru_command_seconds_bucket{{command="{command}",le="{le}"}} {n}')
            lines.append(
                f'guru_command_seconds_sum{{command="{command}"}} {self.latency_sum[command]:.6f}'
            )
            lines.append(f'guru_command_seconds_count{{command="{command}"}} {counts[-1]}')
        stats = self.llm_stats()
        if stats is not None:
            lines += _llm_lines(stats)
        return "\n".join(lines) + "\n"

    async def start(self, host: str, port: int) -> int:
        """Serve GET /metrics; returns the bound port (pass 0 for any free one)."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return int(bound)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )


def _llm_lines(stats: BackendStats) -> list[str]:
    labels = f'backend="{stats.backend}",model="{stats.model.replace(chr(34), "")}"'
    return [
        "# TYPE guru_llm_queue_depth gauge",
        f"guru_llm_queue_depth{{{labels}}} {stats.queued}",
        "# TYPE guru_llm_active gauge",
        f"guru_llm_active{{{labels}}} {stats.active}",
        "# TYPE guru_llm_tokens_total counter",
        f"guru_llm_tokens_total{{{labels}}} {stats.tokens_generated}",
        "# TYPE guru_llm_tokens_per_second gauge",
        f"guru_llm_tokens_per_second{{{labels}}} {stats.recent_tokens_per_s:.3f}",
    ]
