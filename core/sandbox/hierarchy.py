"""Where this host lets us create per-sandbox cgroups: v2 (unified) or v1, found and prepared.

Each `Sandbox` gets a root group `guru-sandbox-<pid>-<n>` nested under the group this process
already lives in (so the host's own limits still apply above ours); cgroup.py makes one child
of it per sandbox.

v2 needs `memory` and `pids` delegated to our group (systemd `Delegate=yes`, a container with
its own cgroup namespace, or root on a v2 host). Because of v2's "no internal processes" rule a
group that holds processes cannot enable controllers for its children: when enabling fails
with EBUSY, the processes of our group move into a leaf `guru-bot` first, which is what
systemd and container runtimes expect a delegated service to do. v1 needs the per-controller
hierarchies to be writable (root). On a hybrid host (v1 controllers plus an empty unified
mount) "auto" picks v1; a pure v2 host gets v2.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "REQUIRED",
    "CONTROLLERS",
    "CgroupRoots",
    "Hierarchy",
    "Version",
    "discover",
    "find_roots",
    "remove_roots",
    "try_rmdir",
]

log = logging.getLogger(__name__)

Version = Literal["auto", "v1", "v2"]
REQUIRED = ("memory", "pids")  # the sandbox refuses without these (unless waived)
CONTROLLERS = (*REQUIRED, "cpu")  # cpu: a quota, so threads cannot take every core; optional
LEAF = "guru-bot"  # v2: where the processes of our own group move (see the module doc)
PREFIX = "guru-sandbox-"
PROC_SELF = Path("/proc/self")


@dataclass(frozen=True)
class Hierarchy:
    """Our own group in each usable controller's hierarchy (v2: one directory for all)."""

    version: int | None  # 1, 2, or None when neither is usable
    groups: dict[str, Path] = field(default_factory=dict)
    detail: dict[str, str] = field(default_factory=dict)  # controller -> why not (or where)

    @property
    def complete(self) -> bool:
        return all(c in self.groups for c in REQUIRED)


@dataclass(frozen=True)
class CgroupRoots:
    """The prepared root group of one Sandbox per controller; missing ones say why in detail."""

    version: int | None
    groups: dict[str, Path]
    detail: dict[str, str]

    @property
    def complete(self) -> bool:
        return all(c in self.groups for c in REQUIRED)

    @property
    def label(self) -> str:
        return f"cgroup v{self.version}" if self.version else "no cgroup"


@dataclass(frozen=True)
class _Mount:
    root: str  # the path inside the hierarchy that is mounted at `point`
    point: Path
    fstype: str
    options: frozenset[str]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mounts(mountinfo: str) -> list[_Mount]:
    found = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields_, rest = head.split(), tail.split()
        if sep and len(fields_) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            opts = frozenset(rest[2].split(","))
            found.append(_Mount(_unescape(fields_[3]), Path(_unescape(fields_[4])), rest[0], opts))
    return found


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """controller -> our group's path ("" is the v2 line `0::/path`)."""
    paths = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                paths[name] = parts[2]
    return paths


def _group_dir(mount: _Mount, own: str | None) -> Path | None:
    """Our group's directory under `mount`, or None when it is not visible there."""
    if own is None or own.startswith("/.."):  # outside our cgroup namespace
        return None
    rel = own
    if mount.root != "/":
        if own != mount.root and not own.startswith(mount.root + "/"):
            return None
        rel = own[len(mount.root) :]
    return mount.point / rel.lstrip("/")


def _discover_v2(mounts: list[_Mount], own: dict[str, str]) -> Hierarchy:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None:
        return Hierarchy(None, detail=dict.fromkeys(CONTROLLERS, "no cgroup v2 hierarchy mounted"))
    base = _group_dir(mount, own.get(""))
    if base is None or not (base / "cgroup.controllers").exists():
        why = f"cgroup v2 at {mount.point}: our group is not visible there"
        return Hierarchy(None, detail=dict.fromkeys(CONTROLLERS, why))
    if base.name == LEAF:  # moved there by an earlier Sandbox of ours: the parent is ours
        base = base.parent
    available = _read(base / "cgroup.controllers").split()
    groups = {c: base for c in CONTROLLERS if c in available}
    detail = {
        c: f"cgroup v2 {base}"
        if c in groups
        else f"cgroup v2: {c} is not delegated to {base} "
        f"(it offers: {' '.join(available) or 'nothing'})"
        for c in CONTROLLERS
    }
    return Hierarchy(2, groups, detail)


def _discover_v1(mounts: list[_Mount], own: dict[str, str]) -> Hierarchy:
    groups, detail = {}, {}
    for controller in CONTROLLERS:
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        base = _group_dir(mount, own.get(controller)) if mount else None
        if base is None or not (base / "cgroup.procs").exists():
            detail[controller] = f"no cgroup v1 {controller} hierarchy"
        elif not os.access(base, os.W_OK):
            detail[controller] = f"cgroup v1 {base} is not writable"
        else:
            groups[controller], detail[controller] = base, f"cgroup v1 {base}"
    return Hierarchy(1, groups, detail)


def discover(version: Version = "auto", proc: Path = PROC_SELF) -> Hierarchy:
    """Find (without creating anything) where our sandboxes' groups could go."""
    mounts = _mounts(_read(proc / "mountinfo"))
    own = _own_paths(_read(proc / "cgroup"))
    v2 = _discover_v2(mounts, own) if version in ("auto", "v2") else None
    if v2 is not None and (v2.complete or version == "v2"):
        return v2
    v1 = _discover_v1(mounts, own)
    if version == "v1" or v1.complete or v2 is None:
        return v1
    # Neither is complete: the one with more required controllers (none: neither, since
    # preparing v2 may move our processes), saying why for both where it lacks one.
    best = max((v1, v2), key=lambda h: len(set(h.groups) & set(REQUIRED)))
    groups = best.groups if set(best.groups) & set(REQUIRED) else {}
    detail = {
        c: best.detail[c] if c in groups else f"{v1.detail[c]}; {v2.detail[c]}" for c in CONTROLLERS
    }
    return Hierarchy(best.version if groups else None, groups, detail)


def _enabled(group: Path) -> set[str]:
    return set(_read(group / "cgroup.subtree_control").replace("+", "").split())


def _enable(group: Path, controllers: list[str]) -> list[str]:
    """Let `group`'s children use `controllers` (v2), moving its processes to a leaf if needed.

    One write per controller: an optional one the kernel refuses (cpu, with a realtime
    process around) must not cost the required ones. Returns those enabled.
    """
    enabled = []
    for controller in controllers:
        if controller not in _enabled(group):
            try:
                _write_subtree(group, controller)
            except OSError:
                if controller in REQUIRED:
                    raise
                continue
        enabled.append(controller)
    return enabled


def _write_subtree(group: Path, controller: str) -> None:
    try:
        (group / "cgroup.subtree_control").write_text("+" + controller)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        _evacuate(group)
        (group / "cgroup.subtree_control").write_text("+" + controller)


def _evacuate(group: Path) -> None:
    """Move every process of `group` into its leaf `guru-bot` (v2's no-internal-process rule)."""
    leaf = group / LEAF
    leaf.mkdir(exist_ok=True)
    pids = _read(group / "cgroup.procs").split()
    log.warning("cgroup v2: moving %d process(es) of %s into %s", len(pids), group, leaf)
    for pid in pids:
        try:
            (leaf / "cgroup.procs").write_text(pid)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # it exited meanwhile
                raise


def try_rmdir(path: Path) -> bool:
    """Remove an (empty) cgroup directory; False when the kernel still holds it."""
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def _remove_stale(parent: Path) -> None:
    """Remove root groups left behind by Guru processes that no longer exist.

    Whatever still runs in them is a sandbox that outlived its Guru (bwrap's --die-with-parent
    has a window: a parent dying before bwrap sets it leaves bwrap running): SIGKILL it first,
    or the group could never be removed. Only groups named after a pid that is gone are
    touched; their processes can only have got there through a Guru launcher.
    """
    for old in parent.glob(PREFIX + "*"):
        pid = old.name[len(PREFIX) :].split("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        children = [child for child in old.iterdir() if child.is_dir()]
        for child in children:
            for leftover in _read(child / "cgroup.procs").split():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(leftover), signal.SIGKILL)
        for _ in range(50):  # killed processes leave their group within milliseconds
            children = [child for child in children if not try_rmdir(child)]
            if not children:
                break
            time.sleep(0.01)
        try_rmdir(old)


def find_roots(version: Version = "auto", tag: str = "", proc: Path = PROC_SELF) -> CgroupRoots:
    """Create `guru-sandbox-<pid>-<tag>` in every usable controller (blocking: off the loop)."""
    found = discover(version, proc)
    name = f"{PREFIX}{os.getpid()}-{tag or 0}"
    groups, detail = {}, dict(found.detail)
    wanted = [c for c in CONTROLLERS if c in found.groups]
    for base in dict.fromkeys(found.groups.values()):  # v2: one base for every controller
        mine = [c for c in wanted if found.groups[c] == base]
        root = base / name
        try:
            _remove_stale(base)
            if found.version == 2:
                mine = _enable(base, mine)
            root.mkdir(exist_ok=True)
            if found.version == 2:
                mine = _enable(root, mine)  # holds no processes itself: never needs a leaf
        except OSError as exc:
            for c in mine:
                detail[c] = f"cgroup v{found.version} {base}: not delegated to us ({exc})"
            continue
        for c in found.groups:
            if found.groups[c] == base and c not in mine:
                detail[c] = f"cgroup v2 {base}: the kernel refused to enable {c}"
        for c in mine:
            groups[c], detail[c] = root, f"cgroup v{found.version} {root}"
    return CgroupRoots(found.version if groups else None, groups, detail)


def remove_roots(roots: CgroupRoots) -> None:
    """rmdir our root groups (only once every sandbox in them is gone)."""
    for root in set(roots.groups.values()):
        try_rmdir(root)
