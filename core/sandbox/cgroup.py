"""cgroup v1 limits per sandbox: `pids.max` and `memory.limit_in_bytes`, where writable.

rlimits are per process or per uid (pitfalls 6, 7); a cgroup bounds the whole sandbox. Each
sandbox gets its own group, nested under the group this process already lives in (so the
host's own limits still apply above ours), joined by the launcher before it execs bwrap,
swept with SIGKILL after the run (pitfall 9's backup) and removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupRoots", "Cgroup", "find_roots"]

log = logging.getLogger(__name__)

MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory")


@dataclass(frozen=True)
class CgroupRoots:
    """The per-process parent group of each controller, or None with the reason."""

    pids: Path | None
    memory: Path | None
    detail: dict[str, str]


def _own_path(controller: str) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return None


def _stale(parent: Path) -> None:
    """Remove groups left behind by Guru processes that no longer exist."""
    for old in parent.glob("guru-sandbox-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for child in old.iterdir():
                if child.is_dir():
                    _try_rmdir(child)
            _try_rmdir(old)


def _try_rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def find_roots() -> CgroupRoots:
    """Create (or reuse) `guru-sandbox-<pid>` under this process's own v1 group per controller."""
    found: dict[str, Path | None] = {}
    detail: dict[str, str] = {}
    for controller in CONTROLLERS:
        own = _own_path(controller)
        mount = MOUNT / controller
        if own is None or not (mount / "cgroup.procs").exists():
            found[controller], detail[controller] = None, f"no cgroup v1 {controller} hierarchy"
            continue
        parent = mount / own.lstrip("/")
        root = parent / f"guru-sandbox-{os.getpid()}"
        try:
            _stale(parent)
            root.mkdir(exist_ok=True)
        except OSError as exc:
            found[controller], detail[controller] = None, f"{parent} not writable ({exc.strerror})"
            continue
        found[controller], detail[controller] = root, str(root)
    return CgroupRoots(found["pids"], found["memory"], detail)


class Cgroup:
    """One sandbox's groups. `procs_files` are what the launcher writes its pid into."""

    def __init__(self, roots: CgroupRoots, memory_mb: int, processes: int) -> None:
        name = uuid.uuid4().hex[:12]
        self.dirs: list[Path] = []
        self.memory_dir: Path | None = None
        if roots.pids is not None:
            self._make(roots.pids / name, {"pids.max": str(processes)})
        if roots.memory is not None:
            limit = str(memory_mb * 1024 * 1024)
            self.memory_dir = roots.memory / name
            self._make(
                self.memory_dir,
                {
                    "memory.limit_in_bytes": limit,
                    "memory.memsw.limit_in_bytes": limit,  # no swapping past the limit either
                },
            )

    def _make(self, path: Path, values: dict[str, str]) -> None:
        path.mkdir()
        self.dirs.append(path)
        for key, value in values.items():
            if (path / key).exists():
                (path / key).write_text(value)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        if self.memory_dir is None:
            return False
        try:
            for line in (self.memory_dir / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

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
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    async def remove(self) -> None:
        """Sweep and rmdir; dying processes can keep a group busy for a few milliseconds."""
        for attempt in range(50):
            self.sweep()
            self.dirs = [d for d in self.dirs if not _try_rmdir(d)]
            if not self.dirs:
                return
            await asyncio.sleep(0.01 * min(attempt + 1, 10))
        log.warning("could not remove sandbox cgroups %s", self.dirs)
