"""One sandbox's cgroup(s), v1 or v2: memory, pids and cpu limits for the whole sandbox.

rlimits are per process or per uid (pitfalls 6, 7); a cgroup bounds the whole sandbox. The
group is a child of the Sandbox's root (hierarchy.py), joined by the launcher before it execs
bwrap (so every process of the sandbox is counted), swept with SIGKILL after the run
(pitfall 9's backup) and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from pathlib import Path

from core.sandbox.hierarchy import CgroupRoots, try_rmdir
from core.sandbox.limits import MiB, SandboxLimits

__all__ = ["Cgroup", "CPU_PERIOD_US"]

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000


def _settings(version: int, controller: str, limits: SandboxLimits) -> list[tuple[str, str, bool]]:
    """(file, value, required) per controller; optional files exist only on some kernels."""
    memory = str(limits.memory_mb * MiB)
    quota = str(max(1000, int(limits.cpus * CPU_PERIOD_US)))
    if version == 2:
        table = {
            "pids": [("pids.max", str(limits.processes), True)],
            # swap.max exists only with swap accounting; without it there is no swap to use.
            "memory": [("memory.max", memory, True), ("memory.swap.max", "0", False)],
            "cpu": [("cpu.max", f"{quota} {CPU_PERIOD_US}", True)],
        }
    else:
        table = {
            "pids": [("pids.max", str(limits.processes), True)],
            "memory": [
                ("memory.limit_in_bytes", memory, True),
                # memsw (memory + swap) exists only with swapaccount=1; must follow the above.
                ("memory.memsw.limit_in_bytes", memory, False),
            ],
            "cpu": [
                ("cpu.cfs_period_us", str(CPU_PERIOD_US), True),
                ("cpu.cfs_quota_us", quota, True),
            ],
        }
    return table[controller]


class Cgroup:
    """One sandbox's groups. `procs_files` are what the launcher writes its pid into."""

    def __init__(self, roots: CgroupRoots, limits: SandboxLimits) -> None:
        assert roots.version is not None and roots.groups
        name = uuid.uuid4().hex[:12]
        self.version = roots.version
        self.limits = limits
        self.controllers = {c: root / name for c, root in roots.groups.items()}
        self.dirs: list[Path] = []
        try:
            for path in dict.fromkeys(self.controllers.values()):  # v2: one dir for all
                path.mkdir()
                self.dirs.append(path)
            for controller, path in self.controllers.items():
                for key, value, required in _settings(self.version, controller, limits):
                    if required or (path / key).exists():
                        (path / key).write_text(value)
        except OSError:
            for path in self.dirs:
                try_rmdir(path)
            raise

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        memory = self.controllers.get("memory")
        if memory is None:
            return False
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (memory / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

    def verify(self, pid: int) -> dict[str, tuple[bool, str]]:
        """Per controller: is `pid` in the group, and does the kernel report our limit?"""
        found = {}
        for controller, path in self.controllers.items():
            settings = _settings(self.version, controller, self.limits)
            ok, shown = True, []
            try:
                joined = str(pid) in (path / "cgroup.procs").read_text().split()
                for key, want, required in settings:
                    if required or (path / key).exists():
                        got = (path / key).read_text().strip()
                        ok = ok and got == want
                        shown.append(f"{key}={got}")
            except OSError as exc:
                found[controller] = (False, f"cgroup v{self.version} {path}: {exc.strerror}")
                continue
            where = f"cgroup v{self.version} {path}: " + ", ".join(shown)
            if not joined:
                where += f"; the sandbox (pid {pid}) is NOT in it"
            found[controller] = (ok and joined, where)
        return found

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                continue
        return found

    def sweep(self) -> int:
        """SIGKILL anything still in the groups (processes that outlived the pid namespace)."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    async def remove(self) -> None:
        """Sweep and rmdir; dying processes can keep a group busy for a few milliseconds."""
        for attempt in range(50):
            self.sweep()
            self.dirs = [d for d in self.dirs if not try_rmdir(d)]
            if not self.dirs:
                return
            await asyncio.sleep(0.01 * min(attempt + 1, 10))
        log.warning("could not remove sandbox cgroups %s", self.dirs)
