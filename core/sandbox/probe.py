"""`check()`: what the sandbox really looks like from inside, turned into named layers.

Layers are judged from a probe program run through the same path as user code, not from
what we asked bwrap for: a flag that silently did nothing shows up here as "missing".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from core.sandbox.limits import MiB, SandboxLimits
from core.sandbox.result import Layer

__all__ = ["PROBE_CODE", "ProbeContext", "host_namespaces", "layers_from_probe"]

NAMESPACES = ("net", "pid", "mnt", "ipc", "uts")
ALLOWED_ROOT = {"bin", "dev", "etc", "lib", "lib64", "proc", "tmp", "usr"}
ALLOWED_ENV = {"PATH", "HOME", "LANG", "PWD"}
NOBODY = 65534

PROBE_CODE = r"""
import json, os, resource, socket
r = {}
r["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
r["groups"] = os.getgroups()
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
for key in ("CapEff", "CapBnd", "Seccomp", "NoNewPrivs"):
    r[key] = status.get(key, "").strip()
r["ns"] = {}
for name in ("net", "pid", "mnt", "ipc", "uts", "user"):
    try:
        r["ns"][name] = os.readlink("/proc/self/ns/" + name)
    except OSError as e:
        r["ns"][name] = "?"
r["env"] = sorted(os.environ)
r["root"] = sorted(os.listdir("/"))
r["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
r["ifaces"] = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("1.1.1.1", 53))
    r["net"] = "connected"
except OSError as e:
    r["net"] = e.strerror or str(e)
r["writable"] = []
for d in ("/", "/usr", "/usr/lib", "/etc", "/dev", "/proc/sys"):
    try:
        open(os.path.join(d, ".guru-probe"), "w").close()
        r["writable"].append(d)
    except OSError:
        pass
try:
    open("/tmp/.guru-probe", "w").write("x")
    st = os.statvfs("/tmp")
    r["tmp_bytes"] = st.f_blocks * st.f_frsize
except OSError:
    r["tmp_bytes"] = None
r["rlimits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                for n in ("AS", "NPROC", "FSIZE", "NOFILE", "CPU", "CORE")}
print(json.dumps(r))
"""


@dataclass(frozen=True)
class ProbeContext:
    """What the host knows: the mode, its own namespaces, tools and cgroup setup."""

    mode: str
    bwrap: str
    host_ns: dict[str, str]
    euid: int
    limits: SandboxLimits
    cgroups: dict[str, str | None]  # controller -> sandbox root path, None = unavailable
    cgroup_detail: dict[str, str]
    seccomp_detail: str


def host_namespaces() -> dict[str, str]:
    found = {}
    for name in NAMESPACES:
        try:
            found[name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            found[name] = "?"
    return found


def _rlimits_ok(got: dict[str, int], limits: SandboxLimits) -> bool:
    want = {
        "AS": limits.address_space_mb * MiB,
        "FSIZE": limits.file_size_mb * MiB,
        "NOFILE": limits.open_files,
        "NPROC": limits.processes * 2,
        "CORE": 0,
    }
    return all(0 <= got.get(k, -1) <= v for k, v in want.items())


def layers_from_probe(
    ctx: ProbeContext, report: dict[str, Any] | None, error: str = ""
) -> list[Layer]:
    """Turn the probe's JSON (None when it did not run) into the layer list of `check()`."""
    r = report or {}
    ran = report is not None
    isolated = ctx.mode in ("root", "userns")
    fresh = [n for n in NAMESPACES if r.get("ns", {}).get(n, "?") not in ("?", ctx.host_ns.get(n))]
    ids = r.get("ids", [])
    host_uid = NOBODY if ctx.mode == "root" else ctx.euid
    tmp_bytes = r.get("tmp_bytes") or 0
    bwrap = f"{ctx.bwrap} ({ctx.mode} mode)" if isolated else f"not used ({ctx.mode})"
    return [
        Layer("bubblewrap", isolated and ran, bwrap + (f": {error}" if error else ""), True),
        Layer(
            "namespaces",
            len(fresh) == len(NAMESPACES),
            f"new {', '.join(fresh) or 'none'}; sandbox sees pids {r.get('pids', [])}",
            True,
        ),
        Layer(
            "no network",
            ran and set(r.get("ifaces", ["?"])) <= {"lo"} and r.get("net") != "connected",
            f"interfaces {r.get('ifaces')}: {r.get('net')}",
            True,
        ),
        Layer(
            "unprivileged uid",
            ids == [NOBODY] * 4 and r.get("CapEff") == "0" * 16 and r.get("NoNewPrivs") == "1",
            f"uid/gid {ids[:1] or '?'} (host uid {host_uid}), CapEff {r.get('CapEff')}, "
            f"NoNewPrivs {r.get('NoNewPrivs')}",
            True,
        ),
        Layer(
            "read-only filesystem",
            ran and not r.get("writable") and set(r.get("root", ["?"])) <= ALLOWED_ROOT,
            f"/ holds {r.get('root')}; writable: {r.get('writable') or 'none'}",
            True,
        ),
        Layer(
            "private tmp",
            0 < tmp_bytes <= ctx.limits.tmp_size_mb * MiB,
            f"/tmp tmpfs of {tmp_bytes // MiB} MiB, fresh per run",
            True,
        ),
        Layer(
            "rlimits",
            _rlimits_ok(r.get("rlimits", {}), ctx.limits),
            json.dumps(r.get("rlimits")),
            True,
        ),
        Layer(
            "empty environment",
            ran and set(r.get("env", ["?"])) <= ALLOWED_ENV,
            f"variables: {r.get('env')}",
            True,
        ),
        Layer(
            "cgroup pids",
            isolated and ctx.cgroups.get("pids") is not None,
            ctx.cgroup_detail.get("pids", "not used"),
        ),
        Layer(
            "cgroup memory",
            isolated and ctx.cgroups.get("memory") is not None,
            ctx.cgroup_detail.get("memory", "not used"),
        ),
        Layer("seccomp", r.get("Seccomp") == "2", ctx.seccomp_detail),
        Layer(
            "wall-clock timeout + output cap",
            True,
            f"SIGKILL of the pid namespace after {ctx.limits.timeout_s:g} s; "
            f"{ctx.limits.output_bytes // 1024} KiB kept per stream",
            True,
        ),
    ]
