"""The real sandbox against hostile programs: each one must fail safely, and the host must be
unharmed afterwards. No mocks: bwrap, setpriv, seccomp and cgroups as `guru` uses them.

Needs bubblewrap (scripts/setup installs it); without it the whole file is skipped, and
`test_refuses_without_isolation` in the unit tests covers the fail-closed path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.sandbox import Sandbox, SandboxLimits
from core.sandbox.launch import choose_mode, find_tools

REPO = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=128, address_space_mb=512, processes=32)

_mode, _why = choose_mode(find_tools(), allow_unsafe=False)
pytestmark = pytest.mark.skipif(_mode is None, reason=f"no isolation on this host: {_why}")


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(LIMITS, pool_size=2)
    assert await box.start() is None, "the sandbox refused on a host that has bwrap"
    yield box
    await box.aclose()


async def run(box: Sandbox, code: str, **kw):
    result = await box.run(code, **kw)
    assert result.status != "refused", result.error
    return result


def nobody_processes() -> set[int]:
    """Host pids running as uid 65534 (sandbox processes, and any other 'nobody')."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == 65534:
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


async def settled_nobody_count(box: Sandbox) -> int:
    await box.wait_pool()
    await asyncio.sleep(0.05)
    return len(nobody_processes())


# -- good programs --------------------------------------------------------------------------


async def test_good_program_returns_its_output(sandbox: Sandbox) -> None:
    result = await run(sandbox, "def solution():\n    return 17 * 3\nprint(solution())")
    assert result.ok and result.status == "ok" and result.exit_code == 0
    assert result.stdout == "51\n" and result.stderr == "" and not result.timed_out


async def test_stdin_reaches_the_program(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
                       stdin="1 2 3 4\n")
    assert result.ok and result.stdout == "10\n"


async def test_exception_is_reported_with_its_line(sandbox: Sandbox) -> None:
    result = await run(sandbox, "x = 1\ny = x / 0\n")
    assert result.status == "error" and result.exit_code == 1
    assert "ZeroDivisionError" in result.error and 'line 2' in result.stderr


async def test_exit_code_passes_through(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import sys; sys.exit(3)")
    assert result.status == "error" and result.exit_code == 3


async def test_stdlib_math_works(sandbox: Sandbox) -> None:
    code = "from fractions import Fraction\nimport math, statistics\n" \
           "print(Fraction(1, 3) + Fraction(1, 6), math.comb(10, 3), statistics.mean([1, 2, 3]))"
    result = await run(sandbox, code)
    assert result.ok and result.stdout == "1/2 120 2\n"


async def test_concurrent_runs_are_independent(sandbox: Sandbox) -> None:
    code = "import os, sys\nopen('/tmp/me', 'w').write(sys.stdin.read())\n" \
           "print(open('/tmp/me').read(), len(os.listdir('/tmp')))"
    results = await asyncio.gather(*(run(sandbox, code, stdin=str(i)) for i in range(3)))
    assert [r.stdout for r in results] == ["0 1\n", "1 1\n", "2 1\n"]


# -- secrets and files ----------------------------------------------------------------------


async def test_cannot_read_etc_shadow(sandbox: Sandbox) -> None:
    result = await run(sandbox, "print(open('/etc/shadow').read())")
    assert result.status == "error" and "root:" not in result.stdout


@pytest.fixture()
def repo_secret() -> Iterator[tuple[Path, str]]:
    """A fake .env-style secret in the repo root, removed afterwards."""
    secret = f"guru-secret-{uuid.uuid4().hex}"
    path = REPO / f".env.sandbox-test-{uuid.uuid4().hex[:8]}"
    path.write_text(f"DISCORD_TOKEN={secret}\n")
    try:
        yield path, secret
    finally:
        path.unlink(missing_ok=True)


async def test_cannot_read_the_projects_env_file(sandbox: Sandbox, repo_secret) -> None:
    path, secret = repo_secret
    code = f"import os\nfor p in [{str(path)!r}, {str(REPO / '.env')!r}]:\n" \
           "    try:\n        print(open(p).read())\n    except OSError as e:\n        print('no', e)\n" \
           f"print(os.path.exists({str(REPO)!r}))"
    result = await run(sandbox, code)
    assert secret not in result.stdout and result.stdout.rstrip().endswith("False")


async def test_cannot_read_the_data_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "guru-data"
    data.mkdir()
    secret = uuid.uuid4().hex
    (data / "secret.txt").write_text(secret)
    code = f"import os\ntry:\n    print(open({str(data / 'secret.txt')!r}).read())\n" \
           f"except OSError as e:\n    print('denied', type(e).__name__)\nprint(os.listdir('/tmp'))"
    result = await run(sandbox, code)
    assert secret not in result.stdout and "denied FileNotFoundError" in result.stdout


async def test_environment_secrets_are_not_inherited(sandbox: Sandbox, monkeypatch) -> None:
    secret = f"token-{uuid.uuid4().hex}"
    monkeypatch.setenv("DISCORD_TOKEN", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{secret}@db/x")
    cold = Sandbox(LIMITS)  # a fresh process started after the variables were set
    code = "import os\nprint(dict(os.environ))\nfor p in ('/proc/self/environ', '/proc/1/environ'):\n" \
           "    try:\n        print(open(p, 'rb').read())\n    except OSError as e:\n        print(p, e)"
    for box in (cold, sandbox):
        result = await run(box, code)
        assert secret not in result.stdout + result.stderr
        assert "DISCORD_TOKEN" not in result.stdout
    await cold.aclose()


async def test_cannot_write_outside_tmp(sandbox: Sandbox) -> None:
    name = f"guru-escape-{uuid.uuid4().hex}"
    targets = ["/", "/usr/lib/python3.11/", "/etc/", "/dev/shm/", str(REPO) + "/"]
    code = f"ok = []\nfor d in {targets!r}:\n    try:\n        open(d + {name!r}, 'w').write('x')\n" \
           "        ok.append(d)\n    except OSError:\n        pass\nprint(ok)"
    result = await run(sandbox, code)
    assert result.stdout == "[]\n"
    assert not any(Path(t + name).exists() for t in targets)


async def test_tmp_is_size_capped(sandbox: Sandbox) -> None:
    code = "with open('/tmp/big', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * 2**20)"
    result = await run(sandbox, code)
    assert result.status in ("error", "killed") and not result.ok


async def test_tmp_files_do_not_survive_into_the_next_run(sandbox: Sandbox) -> None:
    marker = uuid.uuid4().hex
    first = await run(sandbox, f"open('/tmp/{marker}', 'w').write('x'); print('written')")
    assert first.stdout == "written\n"
    second = await run(sandbox, f"import os; print(os.path.exists('/tmp/{marker}'), os.listdir('/tmp'))")
    assert second.stdout == "False []\n"


async def test_symlinks_do_not_reach_the_host(sandbox: Sandbox) -> None:
    code = "import os\nos.symlink('/etc/shadow', '/tmp/s')\nos.symlink('/proc/1/root', '/tmp/r')\n" \
           "for p in ('/tmp/s', '/tmp/r/etc/shadow', '/proc/1/root/etc/passwd', '/proc/self/root/../../root'):\n" \
           "    try:\n        print(p, len(open(p).read()) if os.path.isfile(p) else os.listdir(p))\n" \
           "    except OSError as e:\n        print(p, 'denied')"
    result = await run(sandbox, code)
    assert result.stdout.count("denied") == 4, result.stdout


async def test_cannot_import_the_projects_packages(sandbox: Sandbox) -> None:
    code = f"import sys\nsys.path[:0] = [{str(REPO)!r}, '/work/main', '.']\n" \
           "for name in ('core', 'bot', 'bench', 'torch', 'discord'):\n" \
           "    try:\n        __import__(name)\n        print('imported', name)\n" \
           "    except ImportError:\n        pass\nprint('done')"
    result = await run(sandbox, code)
    assert result.stdout == "done\n"


async def test_host_python_and_usr_local_are_invisible(sandbox: Sandbox) -> None:
    code = "import os, sys\nprint(sys.executable, [p for p in ('/root', '/usr/local', '/work', '/home', " \
           "'/var', '/sys', '/etc/passwd') if os.path.exists(p)])"
    result = await run(sandbox, code)
    assert result.stdout == "/usr/bin/python3 []\n"


# -- network --------------------------------------------------------------------------------


async def test_tcp_to_a_host_port_does_not_connect(sandbox: Sandbox) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
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
    port = receiver.getsockname()[1]
    code = f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" \
           f"s.sendto(b'leak', ('127.0.0.1', {port}))\nprint('sent')"
    try:
        result = await run(sandbox, code)
        with pytest.raises(BlockingIOError):
            receiver.recvfrom(16)
    finally:
        receiver.close()
    assert result.status == "error" and "sent" not in result.stdout


async def test_unix_sockets_of_the_host_are_unreachable(sandbox: Sandbox, tmp_path: Path) -> None:
    path = str(tmp_path / "host.sock")
    abstract = f"\0guru-test-{uuid.uuid4().hex}"
    servers = []
    for address in (path, abstract):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen()
        server.setblocking(False)
        servers.append(server)
    code = f"import socket\nfor a in ({path!r}, {abstract!r}):\n" \
           "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n" \
           "    try:\n        s.connect(a)\n        print('connected')\n" \
           "    except OSError as e:\n        print(type(e).__name__)"
    try:
        result = await run(sandbox, code)
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()
    assert "connected" not in result.stdout
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
    code = "import threading\ndef spin():\n    while True:\n        pass\n" \
           "for _ in range(8):\n    threading.Thread(target=spin, daemon=True).start()\nspin()"
    started = time.monotonic()
    result = await run(sandbox, code, timeout_s=1.0)
    assert result.status == "timeout" and time.monotonic() - started < 3.0


async def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    before = await settled_nobody_count(sandbox)
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    started = time.monotonic()
    result = await run(sandbox, code, timeout_s=1.0)
    assert not result.ok and time.monotonic() - started < 4.0
    assert await settled_nobody_count(sandbox) == before


async def test_detached_children_die_with_the_run(sandbox: Sandbox) -> None:
    before = await settled_nobody_count(sandbox)
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n" \
           "        time.sleep(60)\n    os._exit(0)\nprint('parent done')"
    result = await run(sandbox, code)
    assert result.ok and result.stdout == "parent done\n"
    assert await settled_nobody_count(sandbox) == before


async def test_memory_bomb_is_stopped(sandbox: Sandbox) -> None:
    for code in ("x = bytearray(8 * 2**30)",
                 "chunks = []\nwhile True:\n    chunks.append(bytearray(2**24))"):
        result = await run(sandbox, code)
        assert result.status == "oom", (result.status, result.stderr[-300:])


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
    code = "import os, signal\nfor pid in (os.getppid(), 1, -1):\n    try:\n" \
           "        os.kill(pid, signal.SIGKILL)\n        print(pid, 'sent')\n" \
           "    except OSError as e:\n        print(pid, e.errno)"
    await sandbox.wait_pool()
    others = list(sandbox._ready)[1:]  # the first one runs the program
    assert others
    result = await run(sandbox, code)
    # kill(-1) reaches only the program itself (its pid namespace); the test process, bwrap's
    # init (pid 1, root) and the other pooled sandboxes all survive.
    assert "1 1\n" in result.stdout and os.getppid() > 0
    assert all(child.proc.returncode is None for child in others)
    again = await run(sandbox, "print('still working')")
    assert again.stdout == "still working\n"


async def test_killing_its_own_group_ends_only_the_run(sandbox: Sandbox) -> None:
    result = await run(sandbox, "import os, signal\nos.killpg(0, signal.SIGKILL)")
    assert result.status == "killed" and result.signal == signal.SIGKILL


async def test_shell_and_subprocess_are_unavailable_or_confined(sandbox: Sandbox) -> None:
    code = "import os, subprocess, sys\nprint(os.system('id > /tmp/id'))\n" \
           "try:\n    subprocess.run(['/bin/sh', '-c', 'id'])\nexcept OSError as e:\n    print(type(e).__name__)\n" \
           "out = subprocess.run([sys.executable, '-c', 'import os; print(os.getuid())'], capture_output=True)\n" \
           "print(out.stdout.decode().strip())"
    result = await run(sandbox, code)
    lines = result.stdout.split()
    assert lines[0] != "0" and lines[1] == "FileNotFoundError" and lines[2] == "65534"


async def test_ctypes_cannot_gain_privileges(sandbox: Sandbox) -> None:
    code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n" \
           "print(libc.setuid(0), libc.unshare(0x10000000), libc.unshare(0x00020000), " \
           "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), libc.ptrace(16, 1, 0, 0), " \
           "libc.chroot(b'/tmp'))\nprint(os.getuid(), os.geteuid())"
    result = await run(sandbox, code)
    assert result.stdout == "-1 -1 -1 -1 -1 -1\n65534 65534\n", result.stdout + result.stderr


async def test_proc_shows_no_host_processes(sandbox: Sandbox) -> None:
    me = os.getpid()
    code = f"import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n" \
           f"for p in ('/proc/{me}/environ', '/proc/{me}/cmdline', '/proc/1/environ', '/proc/1/mem'):\n" \
           "    try:\n        print(open(p, 'rb').read()[:100])\n    except OSError as e:\n        print('denied')"
    result = await run(sandbox, code)
    pids = eval(result.stdout.splitlines()[0])  # noqa: S307 - our own probe output, a list of ints
    assert max(pids) < 10 and "pytest" not in result.stdout
    assert result.stdout.count("denied") == 4, result.stdout


async def test_cancelled_run_leaves_nothing_behind(sandbox: Sandbox) -> None:
    before = await settled_nobody_count(sandbox)
    task = asyncio.ensure_future(sandbox.run("import time\ntime.sleep(30)", timeout_s=30))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settled_nobody_count(sandbox) == before


# -- fail closed, check, CLI ----------------------------------------------------------------


async def test_refuses_without_its_interpreter() -> None:
    box = Sandbox(LIMITS, python="/nonexistent/python3")
    result = await box.run("print(1)")
    assert result.status == "refused" and "python3" in (result.error or "") and not result.ok
    await box.aclose()


async def test_check_reports_every_required_layer_active(sandbox: Sandbox) -> None:
    layers = {layer.name: layer for layer in await sandbox.check()}
    for name in ("bubblewrap", "namespaces", "no network", "unprivileged uid",
                 "read-only filesystem", "private tmp", "rlimits", "empty environment"):
        assert layers[name].active and layers[name].required, layers[name]


def test_cli_check_and_run_json(tmp_path: Path, capsys) -> None:
    import json

    from core.cli import main

    assert main(["sandbox", "--check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {layer["name"] for layer in report["layers"]} >= {"seccomp", "namespaces"}
    program = tmp_path / "p.py"
    program.write_text("print(6 * 7)")
    assert main(["sandbox", str(program), "--json", "--timeout", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ok", "stdout", "stderr", "exit_code", "timed_out", "elapsed_ms", "error"} <= set(out)
    assert out["ok"] and out["stdout"] == "42\n"


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


async def test_unsafe_opt_out_runs_without_isolation_and_check_says_so(monkeypatch) -> None:
    from core.sandbox import service
    from core.sandbox.launch import find_tools as real_find_tools

    def no_bwrap(python: str):
        return real_find_tools(python).__class__(**{**real_find_tools(python).__dict__, "bwrap": None})

    monkeypatch.setattr(service, "find_tools", no_bwrap)
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


async def test_oversized_stdin_is_refused(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(1)", stdin="x" * (LIMITS.stdin_bytes + 1))
    assert result.status == "refused" and not result.ok
