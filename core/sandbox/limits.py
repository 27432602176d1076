"""Resource limits of one sandboxed run, in one frozen value (units in the names)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings

__all__ = ["SandboxLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Defaults fit PAL-style arithmetic programs with a lot of headroom.

    `memory_mb` is the cgroup limit for the whole sandbox; `address_space_mb` is the per-process
    RLIMIT_AS, the only memory bound left when cgroups are not writable (pitfall 7: it is per
    process, so `processes` times it is the worst case without a cgroup).
    """

    timeout_s: float = 5.0
    memory_mb: int = 256
    address_space_mb: int = 1024
    processes: int = 64
    # cgroup cpu quota in cores: a threaded program cannot take every core from the bot.
    cpus: float = 1.0
    open_files: int = 64
    file_size_mb: int = 16
    tmp_size_mb: int = 16
    output_bytes: int = 64 * 1024
    # Past this much output (per stream) the program is killed instead of drained to the end.
    flood_bytes: int = 8 * MiB
    stdin_bytes: int = 1 * MiB
    code_bytes: int = 1 * MiB
    # Scheduling priority of sandboxed code: the bot and the model keep the CPU first.
    nice: int = 10

    def cpu_s(self, timeout_s: float) -> int:
        """RLIMIT_CPU soft limit: the wall clock normally fires first; threads may not."""
        return max(1, math.ceil(timeout_s)) + 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        memory_mb = int(getattr(settings, "sandbox_memory_mb", cls.memory_mb))
        return cls(
            timeout_s=float(getattr(settings, "sandbox_timeout_s", cls.timeout_s)),
            memory_mb=memory_mb,
            address_space_mb=max(cls.address_space_mb, memory_mb),  # never the tighter bound
        )
