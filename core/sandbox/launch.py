"""How a sandbox process is started on this host: which tools exist, and the exact argv.

Two isolated modes (SANDBOX_FACTS.md):
- `root`: privileged bwrap (no user namespace: `--uid` under one would map to host root,
  pitfall 1) with every capability dropped except the three setpriv needs (pitfall 2), then
  setpriv switches to uid/gid 65534, clears groups, capabilities and the bounding set, and
  sets no_new_privs before Python starts.
- `userns`: not root; bwrap makes a user namespace and maps the sandbox to 65534 inside
  (it is the bot's own uid outside, which is why `root` is preferred).
`unsafe` runs the runner without any namespace; only an explicit operator opt-out picks it,
and never while the bot runs as root (the program would run as root, with no layer at all).
User namespaces are denied in both modes by the seccomp filter (unshare, clone with
CLONE_NEWUSER, clone3), and in `userns` mode also by bwrap's --disable-userns.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.sandbox.limits import MiB, SandboxLimits

__all__ = ["HostTools", "Mode", "find_tools", "choose_mode", "sandbox_argv", "RUNNER_SOURCE"]

Mode = Literal["root", "userns", "unsafe"]

NOBODY = 65534
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_ENV = {"PATH": "/usr/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
RUNNER_SOURCE = (Path(__file__).with_name("_runner.py")).read_text()
# --size (tmpfs cap) needs 0.7, --disable-userns 0.8: older ones must refuse, not half-work.
MIN_BWRAP = (0, 8)
# -S: no `site` (the runner adds dist-packages itself) and no third-party .pth hooks.
PYTHON_FLAGS = ["-I", "-S", "-B", "-X", "utf8"]


@dataclass(frozen=True)
class HostTools:
    bwrap: str | None
    bwrap_version: str
    setpriv: str | None
    python: str | None  # Debian's interpreter, resolved (…/python3.11), never the bot's own
    sh: str | None
    euid: int
    userns: bool

    @property
    def python_name(self) -> str:
        return Path(self.python).name if self.python else ""


def _userns_allowed() -> bool:
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) <= 0:
            return False
    except (OSError, ValueError):
        return False
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    return not clone.exists() or clone.read_text().strip() == "1"


def find_tools(python: str = "/usr/bin/python3") -> HostTools:
    """Look up bwrap, setpriv, sh and the system Python (blocking; call it off the loop)."""
    bwrap = shutil.which("bwrap", path=SYSTEM_PATH)
    version = ""
    if bwrap:
        try:
            run = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10)
            version = run.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            bwrap = None
    real = os.path.realpath(python) if os.access(python, os.X_OK) else None
    return HostTools(
        bwrap=bwrap,
        bwrap_version=version,
        setpriv=shutil.which("setpriv", path=SYSTEM_PATH),
        python=real,
        sh=shutil.which("sh", path=SYSTEM_PATH),
        euid=os.geteuid(),
        userns=_userns_allowed(),
    )


def bwrap_version(text: str) -> tuple[int, ...]:
    """(0, 8, 0) from "bubblewrap 0.8.0"; () when unreadable."""
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(part.isdigit() for part in parts):
            return tuple(int(part) for part in parts)
    return ()


def choose_mode(tools: HostTools, allow_unsafe: bool) -> tuple[Mode | None, str]:
    """The strongest mode this host allows, or None with the reason (fail closed)."""
    missing = []
    if tools.python is None:
        missing.append("Debian's /usr/bin/python3 (apt-get install python3)")
    if tools.bwrap is None:
        missing.append("bubblewrap (apt-get install bubblewrap)")
    elif bwrap_version(tools.bwrap_version) < MIN_BWRAP:
        missing.append(
            f"bubblewrap >= {'.'.join(map(str, MIN_BWRAP))} (found "
            f"{tools.bwrap_version or 'an unknown version'}; Debian 12 has 0.8.0)"
        )
    elif tools.euid == 0 and tools.setpriv is None:
        missing.append("setpriv (apt-get install util-linux)")
    elif tools.euid != 0 and not tools.userns:
        missing.append("user namespaces (not root, and the kernel refuses unprivileged ones)")
    if not missing:
        return ("root" if tools.euid == 0 else "userns"), "isolated"
    reason = "sandbox isolation unavailable: missing " + "; ".join(missing)
    if allow_unsafe and tools.python is not None and tools.euid == 0:
        return None, (
            f"{reason}; GURU_SANDBOX_UNSAFE_ALLOW_NO_ISOLATION is refused because the bot runs "
            "as root (model-written code would run as root)"
        )
    if allow_unsafe and tools.python is not None:
        opt_out = "running WITHOUT isolation: GURU_SANDBOX_UNSAFE_ALLOW_NO_ISOLATION"
        return "unsafe", f"{reason} ({opt_out})"
    return None, reason


def _multiarch() -> str:
    return getattr(sys.implementation, "_multiarch", "") or f"{platform.machine()}-linux-gnu"


def _filesystem(tools: HostTools) -> list[str]:
    """Read-only binds of just what Debian's python3 (and setpriv) need, with 0755 parents."""
    assert tools.python is not None
    binds = [(tools.python, "/usr/bin/python3")]
    if tools.setpriv:
        binds.append((tools.setpriv, "/usr/bin/setpriv"))
    for lib in (
        f"/usr/lib/{tools.python_name}",
        "/usr/lib/python3/dist-packages",
        f"/usr/lib/{_multiarch()}",
        "/usr/lib64",
    ):
        if os.path.isdir(lib):
            binds.append((lib, lib))
    # Pitfall 5: bwrap would create missing parents as 0700, unreadable to uid 65534.
    parents = sorted(
        {str(p) for _, dst in binds for p in Path(dst).parents if str(p) != "/"},
        key=lambda p: (p.count("/"), p),
    )
    args: list[str] = []
    for parent in [*parents, "/etc"]:
        args += ["--perms", "0755", "--dir", parent]
    for src, dst in binds:
        args += ["--ro-bind", src, dst]
    for top in ("bin", "lib", "lib64"):  # merged /usr: the ELF interpreter is /lib64/ld-linux…
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif top != "bin" and host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def runner_args(
    limits: SandboxLimits, preload: tuple[str, ...] = (), nproc: bool = False
) -> list[str]:
    """The runner's argv: its rlimits, niceness and the modules to import before READY.

    RLIMIT_NPROC counts every process of uid 65534 on the host (pitfall 6): one sandbox's fork
    bomb would make every other sandbox's fork fail. So it is set (0 = left alone) only when
    there is no pids cgroup, which bounds each sandbox on its own.
    """
    return [
        str(limits.address_space_mb * MiB),
        str(limits.processes * 2 if nproc else 0),
        str(limits.file_size_mb * MiB),
        str(limits.open_files),
        str(limits.nice),
        ",".join(preload),
    ]


def python_argv(
    python: str, limits: SandboxLimits, preload: tuple[str, ...] = (), nproc: bool = False
) -> list[str]:
    return [python, *PYTHON_FLAGS, "-c", RUNNER_SOURCE, *runner_args(limits, preload, nproc)]


def sandbox_argv(
    mode: Mode,
    tools: HostTools,
    limits: SandboxLimits,
    *,
    seccomp_fd: int | None = None,
    cgroup_procs: list[str] | None = None,
    preload: tuple[str, ...] = (),
    nproc: bool = False,
) -> list[str]:
    """The full command line for one sandbox (`unsafe`: the runner alone)."""
    assert tools.python is not None
    if mode == "unsafe":
        return python_argv(tools.python, limits, preload, nproc=True)
    assert tools.bwrap is not None
    argv: list[str] = []
    if cgroup_procs:
        # Join the groups *before* bwrap forks, so every process of the sandbox is counted.
        assert tools.sh is not None
        script = (
            'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; '
            'shift; exec "$@"'
        )
        argv += [tools.sh, "-c", script, "sh", *cgroup_procs, "--"]
    argv += [tools.bwrap, *_bwrap_flags(mode, seccomp_fd)]
    argv += _filesystem(tools if mode == "root" else dataclasses.replace(tools, setpriv=None))
    argv += [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--size",
        str(limits.tmp_size_mb * MiB),
        "--tmpfs",
        "/tmp",
        # The root tmpfs and /dev belong to the sandbox user in `userns` mode: freeze them.
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        "/tmp",
        "--clearenv",
    ]
    for key, value in SANDBOX_ENV.items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if mode == "root":
        argv += [
            "/usr/bin/setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    return argv + python_argv("/usr/bin/python3", limits, preload, nproc)


def _bwrap_flags(mode: Mode, seccomp_fd: int | None) -> list[str]:
    """Namespaces, session, lifetime and privileges (mode-dependent)."""
    flags = [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--new-session",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
    ]
    if mode == "root":
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):  # for setpriv; it drops them
            flags += ["--cap-add", cap]
    else:
        # --disable-userns needs --unshare-user, so root mode relies on the seccomp filter alone.
        flags += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    if seccomp_fd is not None:
        flags += ["--seccomp", str(seccomp_fd)]
    return flags
