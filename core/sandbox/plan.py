"""What a `Sandbox` found on this host, once: mode, seccomp BPF, cgroup roots, and the opt-out.

Required layers (bubblewrap, namespaces, uid, read-only fs, rlimits, the memory and pids
cgroups, seccomp, no user namespaces, …) make every run refuse when missing. The operator may
waive only the cgroup and seccomp layers, by name (GURU_SANDBOX_ALLOW_MISSING=cgroup,seccomp),
and that is logged as a warning at start and again for each waived layer actually missing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from core.sandbox.hierarchy import CONTROLLERS, CgroupRoots, Version, find_roots
from core.sandbox.launch import HostTools, Mode, choose_mode, find_tools
from core.sandbox.limits import SandboxLimits
from core.sandbox.probe import WAIVABLE, ProbeContext, host_namespaces
from core.sandbox.seccomp import build_bpf

__all__ = ["ALLOW_MISSING_VAR", "Plan", "make_plan", "parse_allow_missing"]

log = logging.getLogger(__name__)

ALLOW_MISSING_VAR = "GURU_SANDBOX_ALLOW_MISSING"
_instances = itertools.count(1)  # names each Sandbox's own cgroup root


def parse_allow_missing(names: str | Iterable[str]) -> frozenset[str]:
    """`cgroup,seccomp` (or an iterable of names) -> the waived layers; ValueError if unknown."""
    items = names.split(",") if isinstance(names, str) else names
    found = frozenset(name.strip().lower() for name in items if name.strip())
    unknown = found - WAIVABLE
    if unknown:
        raise ValueError(
            f"unknown layer(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(WAIVABLE))}"
        )
    return found


@dataclass(frozen=True)
class Plan:
    tools: HostTools
    mode: Mode | None
    reason: str
    bpf: bytes | None
    seccomp_detail: str
    roots: CgroupRoots | None

    @property
    def nproc(self) -> bool:
        """RLIMIT_NPROC is the fork bound only when there is no pids cgroup (launch.py)."""
        return self.roots is None or "pids" not in self.roots.groups

    def context(
        self,
        limits: SandboxLimits,
        allow_missing: frozenset[str],
        measured: dict[str, tuple[bool, str]],
    ) -> ProbeContext:
        """The host side of `check()`; `measured`: cgroup.verify() on the probe's sandbox."""
        roots = self.roots
        cgroups = (
            {c: (False, roots.detail.get(c, "not used")) for c in CONTROLLERS} if roots else {}
        )
        return ProbeContext(
            mode=self.mode or "none",
            bwrap=f"{self.tools.bwrap} {self.tools.bwrap_version}",
            host_ns=host_namespaces(),
            euid=self.tools.euid,
            limits=limits,
            cgroups={**cgroups, **measured},
            seccomp_detail=self.seccomp_detail,
            allow_missing=allow_missing,
            nproc=self.nproc,
        )


async def make_plan(
    python: str, allow_unsafe: bool, allow_missing: frozenset[str], cgroup_version: Version
) -> Plan:
    tools = await asyncio.to_thread(find_tools, python)
    mode, reason = choose_mode(tools, allow_unsafe)
    bpf, detail, roots = None, "not used", None
    if mode in ("root", "userns"):
        bpf, detail = await build_bpf(tools.python or python)
        tag = str(next(_instances))
        roots = await asyncio.to_thread(find_roots, cgroup_version, tag)
    level = logging.WARNING if mode in ("unsafe", None) else logging.INFO
    cgroups = roots.label if roots else "not used"
    log.log(level, "sandbox mode %s (%s); %s; seccomp: %s", mode, reason, cgroups, detail)
    if allow_missing:
        log.warning(
            "%s=%s: sandboxes will run WITHOUT these required layers where missing (unsafe)",
            ALLOW_MISSING_VAR,
            ",".join(sorted(allow_missing)),
        )
    return Plan(tools, mode, reason, bpf, detail, roots)
