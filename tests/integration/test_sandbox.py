"""The real sandbox against hostile programs: each must fail safely, and the host must be
unharmed afterwards. No mocks: bwrap, setpriv, seccomp and cgroups exactly as `guru` uses them.

Needs bubblewrap, seccomp and cgroup v1 or v2 (scripts/setup installs the first two). Without
them this file is skipped with the reason, and the unit tests cover the fail-closed path; in
CI (`CI=true`) it fails instead. The attack tests run once per cgroup version the host offers
(v1, v2), each skipped with the reason where it cannot. The whole file runs in about a minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import signal
import socket
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.sandbox import Sandbox, SandboxLimits, SandboxResult
from core.sandbox import plan as plan_module
from core.sandbox.hierarchy import CgroupRoots
from core.sandbox.launch import find_tools
from tests.fixtures.sandbox_host import cgroup_version_unavailable, host_refusal, isolation_mark

REPO = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=128, address_space_mb=512, processes=32)

pytestmark = isolation_mark(host_refusal(LIMITS))
X86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="raw x86_64 syscall numbers")


def src(text: str, **values: object) -> str:
    """A program: `values` become variables at its top, then the dedented body."""
    head = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    return head + textwrap.dedent(text).strip("\n") + "\n"


@pytest.fixture(scope="module", params=["v1", "v2"])
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """A warm sandbox on each cgroup version this host can give it."""
    version = request.param
    why = cgroup_version_unavailable(version)
    if why:
        pytest.skip(f"cgroup {version} is not available on this host: {why}")
    box = Sandbox(LIMITS, pool_size=2, cgroup_version=version)
    refusal = await box.start()
    assert refusal is None, f"the sandbox refused on a host that offers cgroup {version}: {refusal}"
    assert box.cgroup_label == f"cgroup {version}"
    yield box
    await box.aclose()


async def run(box: Sandbox, code: str, **kw: object) -> SandboxResult:
    result = await box.run(code, **kw)
    assert result.status != "refused", result.error
    return result


def our_sandbox_processes() -> set[int]:
    """Host pids descending from this test process: every sandbox process, whatever its uid
    (orphans inside a sandbox are reparented to bwrap's init, which descends from us), and
    nothing of anyone else on the host."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    me, ours = os.getpid(), set()
    for pid in parent:
        cursor, hops = pid, 0
        while cursor > 1 and hops < 64:
            cursor, hops = parent.get(cursor, 0), hops + 1
            if cursor == me:
                ours.add(pid)
                break
    return ours


async def settled_process_count(box: Sandbox) -> int:
    """With the pool full and idle the count is stable: bwrap + runner per pooled sandbox."""
    await box.wait_pool()
    await asyncio.sleep(0.05)
    return len(our_sandbox_processes())


# -- good programs --------------------------------------------------------------------------


async def test_good_program_returns_its_output(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        def solution():
            apples, eaten = 17 * 3, 0
            return apples - eaten
        print(solution())
    """),
    )
    assert result.ok and result.status == "ok" and result.exit_code == 0
    assert result.stdout == "51\n" and result.stderr == "" and not result.timed_out


async def test_stdin_reaches_the_program(sandbox: Sandbox) -> None:
    code = "import sys\nprint(sum(map(int, sys.stdin.read().split())))"
    result = await run(sandbox, code, stdin="1 2 3 4\n")
    assert result.ok and result.stdout == "10\n"


async def test_exception_is_reported_with_its_line(sandbox: Sandbox) -> None:
    result = await run(sandbox, "x = 1\ny = x / 0\n")
    assert result.status == "error" and result.exit_code == 1
    assert "ZeroDivisionError" in (result.error or "") and "line 2" in result.stderr


async def test_exit_code_passes_through(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import sys; sys.exit(3)")
    assert result.status == "error" and result.exit_code == 3


async def test_exit_builtins_work_without_site(sandbox: Sandbox) -> None:
    assert (await run(sandbox, "print('a')\nexit()\nprint('b')")).stdout == "a\n"
    assert (await run(sandbox, "quit(5)")).exit_code == 5


async def test_stdlib_math_works(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        from fractions import Fraction
        import math, statistics
        print(Fraction(1, 3) + Fraction(1, 6), math.comb(10, 3), statistics.mean([1, 2, 3]))
    """),
    )
    assert result.ok and result.stdout == "1/2 120 2\n"


async def test_concurrent_runs_are_independent(sandbox: Sandbox) -> None:
    code = src("""
        import os, sys
        open("/tmp/me", "w").write(sys.stdin.read())
        print(open("/tmp/me").read(), len(os.listdir("/tmp")))
    """)
    results = await asyncio.gather(*(run(sandbox, code, stdin=str(i)) for i in range(3)))
    assert [r.stdout for r in results] == ["0 1\n", "1 1\n", "2 1\n"]


# -- secrets and files ----------------------------------------------------------------------


async def test_cannot_read_etc_shadow(sandbox: Sandbox) -> None:
    result = await run(sandbox, "print(open('/etc/shadow').read())")
    assert result.status == "error" and "root:" not in result.stdout


@pytest.fixture()
def repo_secret() -> Iterator[tuple[Path, str]]:
    """A fake .env-style secret in the repo root (never the real .env), removed afterwards."""
    secret = f"guru-secret-{uuid.uuid4().hex}"
    path = REPO / f".env.sandbox-test-{uuid.uuid4().hex[:8]}"
    path.write_text(f"DISCORD_TOKEN={secret}\n")
    try:
        yield path, secret
    finally:
        path.unlink(missing_ok=True)


async def test_cannot_read_the_projects_env_file(sandbox: Sandbox, repo_secret) -> None:
    path, secret = repo_secret
    result = await run(
        sandbox,
        src(
            """
        import os
        for p in (secret_file, env_file):
            try:
                print(open(p).read())
            except OSError as e:
                print("denied", type(e).__name__)
        print(os.path.exists(repo))
    """,
            secret_file=str(path),
            env_file=str(REPO / ".env"),
            repo=str(REPO),
        ),
    )
    assert secret not in result.stdout
    assert result.stdout == "denied FileNotFoundError\n" * 2 + "False\n"


async def test_cannot_read_the_data_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "guru-data"
    data.mkdir()
    secret = uuid.uuid4().hex
    (data / "secret.txt").write_text(secret)
    result = await run(
        sandbox,
        src(
            """
        import os
        try:
            print(open(path).read())
        except OSError as e:
            print("denied", type(e).__name__)
        print(os.listdir("/tmp"))
    """,
            path=str(data / "secret.txt"),
        ),
    )
    assert secret not in result.stdout and result.stdout == "denied FileNotFoundError\n[]\n"


async def test_environment_secrets_are_not_inherited(sandbox: Sandbox, monkeypatch) -> None:
    secret = f"token-{uuid.uuid4().hex}"
    monkeypatch.setenv("DISCORD_TOKEN", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{secret}@db/x")
    cold = Sandbox(LIMITS)  # a fresh process started after the variables were set
    code = src("""
        import os
        print(dict(os.environ))
        for p in ("/proc/self/environ", "/proc/1/environ"):
            try:
                print(open(p, "rb").read())
            except OSError as e:
                print(p, e)
    """)
    for box in (cold, sandbox):
        result = await run(box, code)
        assert secret not in result.stdout + result.stderr
        assert "DISCORD_TOKEN" not in result.stdout and "DATABASE_URL" not in result.stdout
    await cold.aclose()


async def test_cannot_write_outside_tmp(sandbox: Sandbox) -> None:
    name = f"guru-escape-{uuid.uuid4().hex}"
    targets = ["/", "/usr/lib/python3.11/", "/etc/", "/dev/", "/dev/shm/", str(REPO) + "/"]
    result = await run(
        sandbox,
        src(
            """
        written = []
        for d in targets:
            try:
                open(d + name, "w").write("x")
                written.append(d)
            except OSError:
                pass
        print(written)
    """,
            targets=targets,
            name=name,
        ),
    )
    assert result.stdout == "[]\n"
    assert not any(Path(t + name).exists() for t in targets)


async def test_tmp_is_size_capped(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        with open("/tmp/big", "wb") as f:
            for _ in range(64):
                f.write(b"x" * 2**20)
    """),
    )
    assert not result.ok and ("File too large" in result.stderr or "No space" in result.stderr)


async def test_tmp_files_do_not_survive_into_the_next_run(sandbox: Sandbox) -> None:
    marker = f"/tmp/{uuid.uuid4().hex}"
    first = await run(sandbox, src("open(marker, 'w').write('x'); print('written')", marker=marker))
    assert first.stdout == "written\n"
    second = await run(
        sandbox,
        src(
            """
        import os
        print(os.path.exists(marker), os.listdir("/tmp"))
    """,
            marker=marker,
        ),
    )
    assert second.stdout == "False []\n"


async def test_symlinks_do_not_reach_the_host(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        import os
        os.symlink("/etc/shadow", "/tmp/s")
        os.symlink("/proc/1/root", "/tmp/r")
        for p in ("/tmp/s", "/tmp/r/etc/shadow", "/proc/1/root/etc/passwd",
                  "/proc/self/root/../../root"):
            try:
                print(p, len(open(p).read()) if os.path.isfile(p) else os.listdir(p))
            except OSError:
                print(p, "denied")
    """),
    )
    assert result.stdout.count("denied") == 4, result.stdout


async def test_cannot_import_the_projects_packages(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src(
            """
        import sys
        sys.path[:0] = [repo, "/work/main", "."]
        for name in ("core", "bot", "bench", "torch", "discord", "psycopg"):
            try:
                __import__(name)
                print("imported", name)
            except ImportError:
                pass
        print("done")
    """,
            repo=str(REPO),
        ),
    )
    assert result.stdout == "done\n"


async def test_host_python_and_usr_local_are_invisible(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        import os, sys
        hidden = ("/root", "/usr/local", "/work", "/home", "/var", "/sys", "/etc/passwd", "/run")
        print(sys.executable, [p for p in hidden if os.path.exists(p)])
    """),
    )
    assert result.stdout == "/usr/bin/python3 []\n"


# -- network --------------------------------------------------------------------------------


async def test_tcp_to_a_host_port_does_not_connect(sandbox: Sandbox) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    code = src(
        """
        import socket
        socket.create_connection(("127.0.0.1", port), timeout=1)
        print("connected")
    """,
        port=server.getsockname()[1],
    )
    try:
        result = await run(sandbox, code)
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert result.status == "error" and "connected" not in result.stdout


async def test_udp_does_not_leave(sandbox: Sandbox) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    code = src(
        """
        import socket
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", ("127.0.0.1", port))
        print("sent")
    """,
        port=receiver.getsockname()[1],
    )
    try:
        result = await run(sandbox, code)
        with pytest.raises(BlockingIOError):
            receiver.recvfrom(16)
    finally:
        receiver.close()
    assert result.status == "error" and "sent" not in result.stdout


async def test_unix_sockets_of_the_host_are_unreachable(sandbox: Sandbox, tmp_path: Path) -> None:
    addresses = (str(tmp_path / "host.sock"), f"\0guru-test-{uuid.uuid4().hex}")  # file, abstract
    servers = []
    for address in addresses:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen()
        server.setblocking(False)
        servers.append(server)
    code = src(
        """
        import socket
        for a in addresses:
            try:
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(a)
                print("connected")
            except OSError as e:
                print(type(e).__name__)
    """,
        addresses=addresses,
    )
    try:
        result = await run(sandbox, code)
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()
    assert result.stdout.split() == ["FileNotFoundError", "ConnectionRefusedError"]


async def test_dns_lookup_fails(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import socket\nprint(socket.getaddrinfo('example.com', 80))")
    assert result.status == "error" and "gaierror" in result.stderr


# -- resources ------------------------------------------------------------------------------


async def test_infinite_loop_times_out_quickly(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await run(sandbox, "while True:\n    pass", timeout_s=0.5)
    assert result.status == "timeout" and result.timed_out and not result.ok
    assert time.monotonic() - started < 2.0 and 450 < result.elapsed_ms < 1500


async def test_cpu_burning_threads_are_stopped(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await run(
        sandbox,
        src("""
        import threading
        def spin():
            while True:
                pass
        for _ in range(8):
            threading.Thread(target=spin, daemon=True).start()
        spin()
    """),
        timeout_s=1.0,
    )
    assert result.status == "timeout" and time.monotonic() - started < 3.0


async def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    before = await settled_process_count(sandbox)
    started = time.monotonic()
    bomb = asyncio.ensure_future(
        run(
            sandbox,
            src("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """),
            timeout_s=1.5,
        )
    )
    await asyncio.sleep(0.8)
    during = len(our_sandbox_processes())
    result = await bomb
    assert not result.ok and time.monotonic() - started < 4.0
    # It did fork, but no further than pids.max (or RLIMIT_NPROC, 2x, without cgroups), plus
    # the pool's own bwrap + runner processes.
    assert 8 < during <= 2 * LIMITS.processes + 4 * sandbox.pool_size
    assert await settled_process_count(sandbox) == before


async def test_fork_bombs_do_not_make_a_concurrent_sandboxs_fork_fail(sandbox: Sandbox) -> None:
    # RLIMIT_NPROC counts every process of uid 65534 on the host: two bombs at pids.max each
    # used to exhaust it (2 x 32 = 64) for every other sandbox. The pids cgroup is per sandbox.
    bomb = src("""
        import os, time
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
            except OSError:
                break
        print("full", flush=True)
        time.sleep(30)
    """)
    forker = src(
        """
        import os, time
        time.sleep(wait)
        children = []
        for _ in range(8):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        print("forked", len(children))
    """,
        wait=1.2,
    )
    bombs = [asyncio.ensure_future(run(sandbox, bomb, timeout_s=3.0)) for _ in range(2)]
    await asyncio.sleep(0.3)
    result = await run(sandbox, forker, timeout_s=4.0)
    bombed = await asyncio.gather(*bombs)
    assert [(r.status, r.stdout) for r in bombed] == [("timeout", "full\n")] * 2  # at pids.max
    assert result.ok and result.stdout == "forked 8\n", result.stderr[-300:]


async def test_detached_children_die_with_the_run(sandbox: Sandbox) -> None:
    before = await settled_process_count(sandbox)
    result = await run(
        sandbox,
        src("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        print("parent done")
    """),
    )
    assert result.ok and result.stdout == "parent done\n"
    assert await settled_process_count(sandbox) == before


async def test_memory_bomb_is_stopped(sandbox: Sandbox) -> None:
    one_block = "x = bytearray(8 * 2**30)"  # over RLIMIT_AS: MemoryError
    growing = "chunks = []\nwhile True:\n    chunks.append(bytearray(2**24))"  # cgroup OOM kill
    for code in (one_block, growing):
        result = await run(sandbox, code)
        assert result.status == "oom", (result.status, result.stderr[-300:])


async def test_memory_limit_covers_all_processes_of_a_sandbox(sandbox: Sandbox) -> None:
    # Each child stays under RLIMIT_AS (per process); together they pass the cgroup limit.
    code = src(
        """
        import os, time
        children = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                block = b"x" * (mb * 2**20)  # written, so really resident
                time.sleep(1)
                os._exit(0)
            children.append(pid)
        print([os.waitpid(pid, 0)[1] for pid in children])
    """,
        mb=LIMITS.memory_mb * 3 // 4,
    )
    result = await run(sandbox, code, timeout_s=5.0)
    assert result.status == "oom", (result.status, result.stdout, result.stderr[-300:])


async def test_huge_output_is_capped_with_a_marker(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await run(sandbox, "import sys\nsys.stdout.write('x' * 5_000_000)\nprint('tail')")
    assert result.ok and result.stdout_truncated and time.monotonic() - started < 3.0
    assert result.stdout.startswith("x" * 1000) and "output truncated" in result.stdout
    assert len(result.stdout) < LIMITS.output_bytes + 200


async def test_endless_output_is_killed_before_the_timeout(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await run(sandbox, "while True:\n    print('y' * 4096)", timeout_s=10)
    assert result.status == "killed" and result.stdout_truncated
    assert time.monotonic() - started < 5.0


# -- processes and signals ------------------------------------------------------------------


async def test_signals_cannot_reach_the_host(sandbox: Sandbox) -> None:
    await sandbox.wait_pool()
    others = list(sandbox._ready)[1:]  # the first one runs the program
    assert others
    result = await run(
        sandbox,
        src("""
        import os, signal
        for pid in (os.getppid(), 1, -1):
            try:
                os.kill(pid, signal.SIGKILL)
                print(pid, "sent")
            except OSError as e:
                print(pid, e.errno)
    """),
    )
    # getppid() is bwrap's init (pid 1, root): EPERM. kill(-1) reaches only the program's
    # own pid namespace, so the test process and the other pooled sandboxes all survive.
    assert result.stdout.startswith("1 1\n1 1\n") and "sent" not in result.stdout
    assert all(child.proc.returncode is None for child in others)
    again = await run(sandbox, "print('still working')")
    assert again.stdout == "still working\n"


async def test_killing_its_own_group_ends_only_the_run(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import os, signal\nos.killpg(0, signal.SIGKILL)")
    assert result.status == "killed" and result.signal == signal.SIGKILL


async def test_shell_and_subprocess_are_unavailable_or_confined(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        import os, subprocess, sys
        print(os.system("id > /tmp/id"))
        try:
            subprocess.run(["/bin/sh", "-c", "id"])
        except OSError as e:
            print(type(e).__name__)
        cmd = [sys.executable, "-c", "import os; print(os.getuid())"]
        print(subprocess.run(cmd, capture_output=True).stdout.decode().strip())
    """),
    )
    assert result.stdout.split()[1:] == ["FileNotFoundError", "65534"]
    assert result.stdout.split()[0] != "0"  # no shell in the sandbox: os.system fails


async def test_ctypes_cannot_gain_privileges(sandbox: Sandbox) -> None:
    result = await run(
        sandbox,
        src("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.setuid(0), libc.unshare(0x10000000), libc.unshare(0x00020000),
              libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), libc.ptrace(16, 1, 0, 0),
              libc.chroot(b"/tmp"))
        print(os.getuid(), os.geteuid())
    """),
    )
    assert result.stdout == "-1 -1 -1 -1 -1 -1\n65534 65534\n", result.stdout + result.stderr


@X86_64
async def test_user_namespaces_cannot_be_created(sandbox: Sandbox) -> None:
    # Inside one the program would hold every capability: the door to most kernel exploits.
    result = await run(
        sandbox,
        src("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        NEWUSER = os.CLONE_NEWUSER if hasattr(os, "CLONE_NEWUSER") else 0x10000000
        def show(name, rc):
            if rc == 0:
                os._exit(0)  # the child of a clone that succeeded
            print(name, "created" if rc > 0 else os.strerror(ctypes.get_errno()))
        if hasattr(os, "unshare"):  # Python >= 3.12
            try:
                os.unshare(NEWUSER)
                print("os.unshare created")
            except OSError as e:
                print("os.unshare", e.strerror)
        show("unshare", -1 if libc.unshare(NEWUSER) else 1)
        clone = lambda flags: libc.syscall(ctypes.c_long(56), ctypes.c_long(flags),
                                           *[ctypes.c_long(0)] * 4)
        show("clone", clone(NEWUSER | 17))
        show("clone high bits", clone(-(1 << 63) | NEWUSER | 17))  # the kernel uses 32 bits
        args = (ctypes.c_uint64 * 11)(NEWUSER, 0, 0, 0, 17)  # struct clone_args
        show("clone3", libc.syscall(ctypes.c_long(435), args, ctypes.c_long(88)))
    """),
    )
    lines = result.stdout.splitlines()
    assert "created" not in result.stdout and len(lines) >= 4, result.stdout + result.stderr
    assert [line.split(" ", 1)[0] for line in lines[-4:]] == ["unshare", "clone", "clone", "clone3"]


@X86_64
async def test_tiocsti_is_refused_even_with_high_bits_set(sandbox: Sandbox) -> None:
    # ioctl's request is 32 bits to the kernel; seccomp sees 64. EPERM = the filter caught
    # it, ENOTTY = it reached the kernel as TIOCSTI (harmless on a pipe, not on a tty).
    result = await run(
        sandbox,
        src("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        char = ctypes.c_char(b"x")
        for request in (0x5412, 0xFFFFFFFF00005412 - (1 << 64), 0x100005412):
            rc = libc.syscall(ctypes.c_long(16), ctypes.c_long(0), ctypes.c_long(request),
                              ctypes.byref(char))
            print(rc, os.strerror(ctypes.get_errno()))
    """),
    )
    assert result.stdout == "-1 Operation not permitted\n" * 3, result.stdout + result.stderr


async def test_proc_shows_no_host_processes(sandbox: Sandbox) -> None:
    me = os.getpid()
    result = await run(
        sandbox,
        src(
            """
        import os
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        for p in (f"/proc/{me}/environ", f"/proc/{me}/cmdline", "/proc/1/environ", "/proc/1/mem"):
            try:
                print(open(p, "rb").read()[:100])
            except OSError:
                print("denied")
    """,
            me=me,
        ),
    )
    pids = json.loads(result.stdout.splitlines()[0])
    assert max(pids) < 10 and "pytest" not in result.stdout
    assert result.stdout.count("denied") == 4, result.stdout


async def test_hostile_runs_leak_no_file_descriptors(sandbox: Sandbox) -> None:
    await sandbox.wait_pool()
    before = len(os.listdir("/proc/self/fd"))
    for code in (
        "while True:\n    pass",
        "while True:\n    print('x' * 4096)",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
        "x = bytearray(2**33)",
    ):
        await run(sandbox, code, timeout_s=0.5)
    await sandbox.wait_pool()
    assert len(os.listdir("/proc/self/fd")) == before


async def test_cancelled_run_leaves_nothing_behind(sandbox: Sandbox) -> None:
    before = await settled_process_count(sandbox)
    task = asyncio.ensure_future(sandbox.run("import time\ntime.sleep(30)", timeout_s=30))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settled_process_count(sandbox) == before


# -- fail closed, check, CLI ----------------------------------------------------------------


async def test_refuses_without_its_interpreter() -> None:
    box = Sandbox(LIMITS, python="/nonexistent/python3")
    result = await box.run("print(1)")
    assert result.status == "refused" and "python3" in (result.error or "") and not result.ok
    await box.aclose()


async def test_check_reports_every_required_layer_active(sandbox: Sandbox) -> None:
    layers = {layer.name: layer for layer in await sandbox.check()}
    for name in (
        "bubblewrap",
        "namespaces",
        "no network",
        "unprivileged uid",
        "read-only filesystem",
        "private tmp",
        "rlimits",
        "empty environment",
        "cgroup pids",
        "cgroup memory",
        "seccomp",
        "no user namespaces",
    ):
        assert layers[name].active and layers[name].required, layers[name]
    version = sandbox.cgroup_label.split()[-1]
    assert layers["cgroup memory"].detail.startswith(f"cgroup {version} ")


def _without_cgroups(version: str, tag: str) -> CgroupRoots:
    why = "no cgroup v1 memory hierarchy; cgroup v2: memory is not delegated to /x"
    return CgroupRoots(None, {}, {"memory": why, "pids": why, "cpu": why})


async def _without_seccomp(python: str) -> tuple[bytes | None, str]:
    return (
        None,
        "libseccomp unavailable: No module named 'seccomp' (apt-get install python3-seccomp)",
    )


@pytest.mark.parametrize(
    ("patch", "layers"),
    [
        ({"find_roots": _without_cgroups}, ["cgroup pids", "cgroup memory"]),
        ({"build_bpf": _without_seccomp}, ["seccomp", "no user namespaces"]),
    ],
)
async def test_a_host_without_cgroups_or_seccomp_refuses(monkeypatch, patch, layers) -> None:
    for name, fake in patch.items():
        monkeypatch.setattr(plan_module, name, fake)
    box = Sandbox(LIMITS)
    result = await box.run("print('ran')")
    await box.aclose()
    assert result.status == "refused" and result.stdout == ""
    assert all(layer in (result.error or "") for layer in layers), result.error
    assert "GURU_SANDBOX_ALLOW_MISSING" in (result.error or "")


async def test_the_opt_out_runs_without_the_waived_layers_and_says_so(monkeypatch) -> None:
    monkeypatch.setattr(plan_module, "find_roots", _without_cgroups)
    monkeypatch.setattr(plan_module, "build_bpf", _without_seccomp)
    only_cgroup = Sandbox(LIMITS, allow_missing=["cgroup"])
    assert (await only_cgroup.run("print(1)")).status == "refused"  # seccomp still required
    box = Sandbox(LIMITS, allow_missing=["cgroup", "seccomp"])
    result = await box.run("print('ran')")
    assert result.ok and result.stdout == "ran\n"
    layers = {layer.name: layer for layer in await box.check()}
    assert {name for name, layer in layers.items() if layer.waived} == {
        "cgroup pids",
        "cgroup memory",
        "seccomp",
        "no user namespaces",  # root mode: only the seccomp filter blocks them
    }
    assert layers["rlimits"].active and "NPROC" in layers["rlimits"].detail  # the only fork cap
    await only_cgroup.aclose()
    await box.aclose()


def test_cli_check_and_run_json(tmp_path: Path, capsys) -> None:
    from core.cli import main

    assert main(["sandbox", "--check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {"seccomp", "namespaces"} <= {
        layer["name"] for layer in report["layers"]
    }
    program = tmp_path / "p.py"
    program.write_text("print(6 * 7)")
    assert main(["sandbox", str(program), "--json", "--timeout", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ok", "stdout", "stderr", "exit_code", "timed_out", "elapsed_ms", "error"} <= set(out)
    assert out["ok"] and out["stdout"] == "42\n"


def test_cli_check_lists_every_layer_for_humans(capsys) -> None:
    from core.cli import main

    assert main(["sandbox", "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("sandbox: ready; cgroup v")
    layer_lines = lines[:-1]
    assert len(layer_lines) >= 14 and all(line.startswith("active ") for line in layer_lines)
    required = [line.split()[1:4] for line in layer_lines if " required " in line]
    for name in (["cgroup", "pids"], ["cgroup", "memory"], ["seccomp"], ["no", "user"]):
        assert any(words[: len(name)] == name for words in required), name


# -- the warm pool and the unsafe opt-out ---------------------------------------------------


async def test_warm_pool_hands_out_prestarted_single_use_sandboxes(sandbox: Sandbox) -> None:
    assert await sandbox.wait_pool()
    first = sandbox._ready[0]
    result = await run(sandbox, "print('warm')")
    assert result.ok and first not in sandbox._ready
    assert first.proc.returncode is not None  # used once, then torn down
    assert await sandbox.wait_pool() and first not in sandbox._ready


async def test_burst_of_runs_all_succeed_while_the_pool_refills(sandbox: Sandbox) -> None:
    results = await asyncio.gather(*(run(sandbox, f"print({i} * 2)") for i in range(6)))
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(6)]


async def test_unsafe_opt_out_is_refused_when_the_bot_runs_as_root(monkeypatch) -> None:
    real = find_tools()
    monkeypatch.setattr(
        plan_module, "find_tools", lambda python: dataclasses.replace(real, bwrap=None)
    )
    unsafe = Sandbox(LIMITS, allow_unsafe=True)
    result = await unsafe.run("print(1)")
    await unsafe.aclose()
    if real.euid == 0:
        assert result.status == "refused" and "runs as root" in (result.error or "")
    else:
        assert result.ok


async def test_unsafe_opt_out_runs_without_isolation_and_check_says_so(monkeypatch) -> None:
    # As a non-root bot (faked here: the runner itself still starts as this process's user).
    real = dataclasses.replace(find_tools(), bwrap=None, euid=1000)
    monkeypatch.setattr(plan_module, "find_tools", lambda python: real)
    monkeypatch.setenv("DISCORD_TOKEN", "unsafe-mode-secret")
    closed = Sandbox(LIMITS)
    assert (await closed.run("print(1)")).status == "refused"
    unsafe = Sandbox(LIMITS, allow_unsafe=True)
    result = await unsafe.run("import os\nprint(os.environ.get('DISCORD_TOKEN'))")
    assert result.ok and result.stdout == "None\n"  # even unsafe mode never passes the env on
    layers = {layer.name: layer for layer in await unsafe.check()}
    assert not layers["bubblewrap"].active and not layers["namespaces"].active
    await closed.aclose()
    await unsafe.aclose()


async def test_oversized_stdin_or_program_is_refused(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(1)", stdin="x" * (LIMITS.stdin_bytes + 1))
    assert result.status == "refused" and not result.ok
    result = await sandbox.run("#" * (LIMITS.code_bytes + 1))
    assert result.status == "refused" and "larger" in (result.error or "")
