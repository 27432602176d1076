"""Finding and preparing per-sandbox cgroups (v1 and v2) against a fake /proc and cgroupfs.

The kernel side is imitated only where our code depends on it: v2 refuses to enable
controllers for a group that holds processes (EBUSY), and writing a pid into a cgroup.procs
moves it there. The real hierarchies are exercised by tests/integration/test_sandbox.py.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from core.sandbox.cgroup import Cgroup
from core.sandbox.hierarchy import discover, find_roots
from core.sandbox.limits import SandboxLimits

LIMITS = SandboxLimits(memory_mb=128, processes=32, cpus=0.5)
V1 = ("memory", "pids", "cpu")


def mountinfo_line(n: int, root: str, point: Path, fstype: str, opts: str) -> str:
    escaped = str(point).replace(" ", "\\040")  # as the kernel writes it
    return f"{n} 1 0:{n} {root} {escaped} rw,relatime - {fstype} {fstype} rw,{opts}"


def fake_proc(tmp: Path, cgroup_lines: list[str], mounts: list[str]) -> Path:
    proc = tmp / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("\n".join(cgroup_lines) + "\n")
    (proc / "mountinfo").write_text("\n".join(mounts) + "\n")
    return proc


def group(path: Path, controllers: str = "", procs: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text(procs)
    (path / "cgroup.controllers").write_text(controllers)
    (path / "cgroup.subtree_control").write_text("")
    return path


@pytest.fixture()
def v2_host(tmp_path: Path) -> tuple[Path, Path]:
    """A pure v2 host: Guru's service group has memory, pids and cpu delegated to it."""
    mount = tmp_path / "cgroup"
    base = group(mount / "system.slice" / "guru.service", "cpu memory pids", procs="4242\n")
    proc = fake_proc(
        tmp_path,
        ["0::/system.slice/guru.service"],
        [mountinfo_line(30, "/", mount, "cgroup2", "nsdelegate")],
    )
    return proc, base


refuse_cpu = False  # kernel_rules: refuse "+cpu" with EINVAL


@pytest.fixture()
def kernel_rules(monkeypatch) -> None:
    """v2's no-internal-process rule, pid moves and the enabled-controllers list, on files."""
    real_write = Path.write_text

    def write_text(self: Path, data: str, *args, **kwargs) -> int:
        if self.name == "cgroup.subtree_control":
            procs = self.parent / "cgroup.procs"
            if procs.exists() and procs.read_text().split():
                raise OSError(errno.EBUSY, "Device or resource busy")
            if data == "+cpu" and refuse_cpu:
                raise OSError(errno.EINVAL, "Invalid argument")
            old = self.read_text().split() if self.exists() else []
            data = " ".join([*old, data.lstrip("+")])
        if self.name == "cgroup.procs" and (self.parent.parent / "cgroup.procs").exists():
            source = self.parent.parent / "cgroup.procs"
            rest = [p for p in source.read_text().split() if p != data.strip()]
            real_write(source, "".join(p + "\n" for p in rest))
            data = (self.read_text() if self.exists() else "") + data.strip() + "\n"
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def test_v2_host_gets_a_delegated_subtree_with_every_limit(v2_host, kernel_rules) -> None:
    proc, base = v2_host
    roots = find_roots("auto", "7", proc)
    root = base / f"guru-sandbox-{os.getpid()}-7"
    assert roots.version == 2 and roots.complete and set(roots.groups.values()) == {root}
    # The service's own processes moved to a leaf so its children may use the controllers.
    assert (base / "guru-bot" / "cgroup.procs").read_text().split() == ["4242"]
    assert (base / "cgroup.subtree_control").read_text() == "memory pids cpu"
    assert (root / "cgroup.subtree_control").read_text() == "memory pids cpu"
    cgroup = Cgroup(roots, LIMITS)
    (sandbox,) = cgroup.dirs
    assert (sandbox / "memory.max").read_text() == str(128 * 2**20)
    assert (sandbox / "pids.max").read_text() == "32"
    assert (sandbox / "cpu.max").read_text() == "50000 100000"
    assert not (sandbox / "memory.swap.max").exists()  # a kernel without swap accounting
    assert cgroup.procs_files == [str(sandbox / "cgroup.procs")]


def test_v2_cpu_refused_by_the_kernel_costs_only_the_cpu_quota(
    v2_host, kernel_rules, monkeypatch
) -> None:
    monkeypatch.setitem(globals(), "refuse_cpu", True)  # e.g. a realtime process exists
    proc, base = v2_host
    roots = find_roots("v2", "1", proc)
    assert roots.complete and set(roots.groups) == {"memory", "pids"}
    assert "refused to enable cpu" in roots.detail["cpu"]


def test_v2_swap_is_turned_off_where_the_kernel_has_swap_max(v2_host, monkeypatch) -> None:
    proc, base = v2_host
    (base / "cgroup.procs").write_text("")
    roots = find_roots("v2", "1", proc)
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs) -> None:
        real_mkdir(self, *args, **kwargs)
        (self / "memory.swap.max").write_text("max")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    (sandbox,) = Cgroup(roots, LIMITS).dirs
    assert (sandbox / "memory.swap.max").read_text() == "0"


def test_v2_reads_oom_kills_from_memory_events(v2_host) -> None:
    proc, base = v2_host
    (base / "cgroup.procs").write_text("")
    cgroup = Cgroup(find_roots("v2", "1", proc), LIMITS)
    (sandbox,) = cgroup.dirs
    (sandbox / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not cgroup.oom_killed()
    (sandbox / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_killed()


def test_v2_without_delegated_memory_says_so_and_creates_nothing(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    base = group(mount / "user.slice", "cpu io")
    proc = fake_proc(tmp_path, ["0::/user.slice"], [mountinfo_line(30, "/", mount, "cgroup2", "")])
    roots = find_roots("auto", "1", proc)
    assert roots.version is None and not roots.complete
    assert "memory is not delegated" in roots.detail["memory"]
    assert "pids is not delegated" in roots.detail["pids"]
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == []


def test_hybrid_host_uses_v1_and_explains_why_not_v2(tmp_path: Path) -> None:
    """This machine kind: v1 controllers plus a unified mount that holds none of them."""
    mounts = [mountinfo_line(41, "/", group(tmp_path / "unified", "hugetlb"), "cgroup2", "")]
    for n, name in enumerate(V1):
        mounts.append(mountinfo_line(32 + n, "/", group(tmp_path / name), "cgroup", name))
    own = [f"{n + 1}:{name}:/" for n, name in enumerate(V1)] + ["0::/"]
    proc = fake_proc(tmp_path, own, mounts)
    assert "it offers: hugetlb" in discover("v2", proc).detail["memory"]
    roots = find_roots("auto", "1", proc)
    assert roots.version == 1 and roots.complete and set(roots.groups) == set(V1)
    cgroup = Cgroup(roots, LIMITS)
    memory = cgroup.controllers["memory"]
    assert (memory / "memory.limit_in_bytes").read_text() == str(128 * 2**20)
    assert (cgroup.controllers["pids"] / "pids.max").read_text() == "32"
    assert (cgroup.controllers["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    assert len(cgroup.procs_files) == 3  # one group per v1 hierarchy, all joined
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroup.oom_killed()


def test_v1_inside_a_container_maps_the_mount_root(tmp_path: Path) -> None:
    mounts = [
        mountinfo_line(32 + n, "/docker/abc", group(tmp_path / f"cg {name}"), "cgroup", name)
        for n, name in enumerate(V1)
    ]
    own = [f"{n + 1}:{name}:/docker/abc" for n, name in enumerate(V1)]
    proc = fake_proc(tmp_path, own, mounts)
    found = discover("v1", proc)
    assert found.complete and found.groups["memory"] == tmp_path / "cg memory"


def test_no_cgroups_at_all_explains_both_versions(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, ["0::/"], [])
    roots = find_roots("auto", "1", proc)
    assert roots.version is None and roots.groups == {}
    assert "no cgroup v1 memory hierarchy" in roots.detail["memory"]
    assert "no cgroup v2 hierarchy mounted" in roots.detail["memory"]


def test_groups_of_dead_guru_processes_are_removed(v2_host) -> None:
    proc, base = v2_host
    (base / "cgroup.procs").write_text("")
    stale = base / "guru-sandbox-999999999-3"
    (stale / "0123456789ab").mkdir(parents=True)
    live = base / f"guru-sandbox-{os.getpid()}-99"
    live.mkdir()
    find_roots("v2", "1", proc)
    assert not stale.exists() and live.exists()


def test_a_failed_limit_write_leaves_no_group_behind(v2_host, monkeypatch) -> None:
    proc, base = v2_host
    (base / "cgroup.procs").write_text("")
    roots = find_roots("v2", "1", proc)
    real_write = Path.write_text

    def write_text(self: Path, data: str, *args, **kwargs) -> int:
        if self.name == "memory.max":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(PermissionError):
        Cgroup(roots, LIMITS)
    (root,) = set(roots.groups.values())
    assert [p for p in root.iterdir() if p.is_dir()] == []


def test_a_sandbox_that_outlived_its_guru_is_killed_at_the_next_start(v2_host) -> None:
    # bwrap's --die-with-parent has a window at spawn: a Guru dying then leaves bwrap running.
    proc, base = v2_host
    (base / "cgroup.procs").write_text("")
    orphan = subprocess.Popen(["sleep", "30"])
    stale = group(base / "guru-sandbox-999999999-1" / "0123456789ab", procs=f"{orphan.pid}\n")
    try:
        find_roots("v2", "1", proc)
        assert orphan.wait(timeout=5) == -signal.SIGKILL
    finally:
        orphan.kill()
    assert stale.exists()  # a real cgroupfs drops it once empty; plain files keep the dir
