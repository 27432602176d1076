"""A seccomp filter for the sandbox, compiled to BPF once per process and handed to bwrap.

libseccomp's Python binding ships only for Debian's /usr/bin/python3 (apt python3-seccomp),
not for the interpreter Guru runs on, so the filter is compiled by a short child process.
Policy: allow by default, refuse what a Python program never needs and what widens the
kernel attack surface — new namespaces (a user namespace would hand the program a full
capability set inside it), mounts, ptrace, BPF, keyrings, io_uring, module loading — and
every socket family except AF_UNIX (the network namespace already has no route out; this
makes the failure immediate and explicit). kill(1) is refused too, which closes pitfall 3b
when bwrap runs unprivileged.

ioctl's request and kill's pid are 32-bit `int`s to the kernel, but seccomp sees the whole
64-bit register: `ioctl(0, 0xffffffff00005412)` is TIOCSTI to the kernel and would slip past
an EQ on 64 bits. So those rules compare the low 32 bits only (MASKED_EQ 0xffffffff).
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["FILTER_SCRIPT", "build_bpf"]

log = logging.getLogger(__name__)

FILTER_SCRIPT = r"""
import errno, sys, seccomp
DENY = ["ptrace", "mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "bpf",
        "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "process_vm_readv", "process_vm_writev",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "reboot", "swapon", "swapoff", "syslog", "open_by_handle_at", "name_to_handle_at",
        "acct", "quotactl", "fsopen", "fsmount", "fspick", "open_tree", "move_mount",
        "mount_setattr", "personality", "lookup_dcookie", "vhangup", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname"]
NEW_NAMESPACES = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                  0x40000000, 0x00000080]
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
for name in DENY:
    try:
        f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    except (RuntimeError, ValueError):
        pass  # a syscall this kernel or libseccomp does not know
f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # flags live in memory; glibc falls back to clone
for flag in NEW_NAMESPACES:
    f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.NE, 1))
LOW32, TIOCSTI = 0xFFFFFFFF, 0x5412
f.add_rule(seccomp.ERRNO(errno.EPERM), "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, LOW32, TIOCSTI))
f.add_rule(seccomp.ERRNO(errno.EPERM), "kill", seccomp.Arg(0, seccomp.MASKED_EQ, LOW32, 1))
sys.stdout.flush()
f.export_bpf(sys.stdout)
"""


async def build_bpf(python: str) -> tuple[bytes | None, str]:
    """(BPF program, detail). None with the reason when libseccomp is not usable here."""
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-I",
            "-c",
            FILTER_SCRIPT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    except (TimeoutError, OSError) as exc:
        return None, f"could not compile the filter: {exc}"
    if proc.returncode != 0 or not out or len(out) % 8:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        hint = " (apt-get install python3-seccomp)" if "seccomp" in reason[0] else ""
        log.info("seccomp filter unavailable: %s", reason[0])
        return None, f"libseccomp unavailable: {reason[0]}{hint}"
    return out, f"{len(out) // 8} BPF instructions via {python}"
