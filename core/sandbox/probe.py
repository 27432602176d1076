"""`check()`: what the sandbox really looks like from inside, turned into named layers.

Layers are judged from a probe program run through the same path as user code, not from
what we asked bwrap for: a flag that silently did nothing shows up here as "missing".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
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
# A user namespace would hand the program every capability inside it: both ways must fail.
import ctypes, errno, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def _userns(rc):
    return "created" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
r["userns"] = {"unshare": _userns(libc.unshare(0x10000000))}
nr = {"x86_64": 56, "aarch64": 220}.get(platform.machine())  # clone(CLONE_NEWUSER|SIGCHLD)
if nr is not None:
    pid = libc.syscall(ctypes.c_long(nr), ctypes.c_long(0x10000000 | 17), *[ctypes.c_long(0)] * 4)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    r["userns"]["clone"] = _userns(pid)
r["rlimits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                for n in ("AS", "NPROC", "FSIZE", "NOFILE", "CPU", "CORE")}
print(json.dumps(r))
"""


# Layers an operator may run without (GURU_SANDBOX_ALLOW_MISSING=cgroup,seccomp). In root mode
# only the seccomp filter denies user namespaces, so waiving seccomp waives that layer too.
WAIVERS = {
    "cgroup pids": "cgroup",
    "cgroup memory": "cgroup",
    "seccomp": "seccomp",
    "no user namespaces": "seccomp",
}
WAIVABLE = frozenset(WAIVERS.values())


@dataclass(frozen=True)
class ProbeContext:
    """What the host knows: the mode, its own namespaces, tools and cgroup setup."""

    mode: str
    bwrap: str
    host_ns: dict[str, str]
    euid: int
    limits: SandboxLimits
    # controller -> (active, detail), as measured on the probe's own sandbox (cgroup.verify)
    cgroups: dict[str, tuple[bool, str]]
    seccomp_detail: str
    allow_missing: frozenset[str] = frozenset()
    nproc: bool = False  # RLIMIT_NPROC set: only when there is no pids cgroup


def host_namespaces() -> dict[str, str]:
    found = {}
    for name in NAMESPACES:
        try:
            found[name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            found[name] = "?"
    return found


def _rlimits_ok(got: dict[str, int], limits: SandboxLimits, nproc: bool) -> bool:
    want = {
        "AS": limits.address_space_mb * MiB,
        "FSIZE": limits.file_size_mb * MiB,
        "NOFILE": limits.open_files,
        "CORE": 0,
    }
    if nproc:
        want["NPROC"] = limits.processes * 2
    return all(0 <= got.get(k, -1) <= v for k, v in want.items())


def _cgroup_layer(ctx: ProbeContext, controller: str, required: bool) -> Layer:
    active, detail = ctx.cgroups.get(controller, (False, "not used"))
    return Layer(f"cgroup {controller}", active, detail, required)


def _waive(layers: list[Layer], allow_missing: frozenset[str]) -> list[Layer]:
    """Mark missing required layers the operator explicitly chose to run without."""
    return [
        replace(layer, waived=True)
        if layer.required and not layer.active and WAIVERS.get(layer.name) in allow_missing
        else layer
        for layer in layers
    ]


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
    userns = r.get("userns", {})
    layers = [
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
            _rlimits_ok(r.get("rlimits", {}), ctx.limits, ctx.nproc),
            json.dumps(r.get("rlimits"))
            + ("" if ctx.nproc else "; NPROC left to the pids cgroup (RLIMIT_NPROC is per uid)"),
            True,
        ),
        Layer(
            "empty environment",
            ran and set(r.get("env", ["?"])) <= ALLOWED_ENV,
            f"variables: {r.get('env')}",
            True,
        ),
        _cgroup_layer(ctx, "pids", True),
        _cgroup_layer(ctx, "memory", True),
        _cgroup_layer(ctx, "cpu", False),
        Layer("seccomp", r.get("Seccomp") == "2", ctx.seccomp_detail, True),
        Layer(
            "no user namespaces",
            ran and bool(userns) and "created" not in userns.values(),
            "creating one: " + (", ".join(f"{k} {v}" for k, v in userns.items()) or "not tried"),
            True,
        ),
        Layer(
            "wall-clock timeout + output cap",
            True,
            f"SIGKILL of the pid namespace after {ctx.limits.timeout_s:g} s; "
            f"{ctx.limits.output_bytes // 1024} KiB kept per stream",
            True,
        ),
    ]
    return _waive(layers, ctx.allow_missing)
