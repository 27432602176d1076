"""Runs INSIDE the sandbox under Debian's /usr/bin/python3 -I -S (stdlib only; passed with -c).

It starts before any request exists (the warm pool): lowers its own rlimits, preloads the
modules PAL programs use (off the caller's path), announces READY on stdout, then blocks on
stdin for one request: a header line "<code bytes> <cpu seconds>", the code, and whatever
follows is the program's own stdin. Each runner executes exactly one program.
Kept import-light on purpose (no json, re or traceback until needed): every import here is
paid by each cold start.
"""

import builtins
import os
import resource
import sys
import types

READY = b"\x00guru-sandbox-ready\n"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"  # apt's python3-* packages (e.g. sympy)


def _limit(which, value):
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


def _read_line(fd):
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            os._exit(0)  # the pool is shutting down: nothing to run
        data += chunk
    return bytes(data)


def _read_exactly(fd, size):
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _site():
    """What `site` would give a program, without paying for `site` (-S): apt packages, exit()."""
    if os.path.isdir(DIST_PACKAGES):
        sys.path.append(DIST_PACKAGES)
    from _sitebuiltins import Quitter

    builtins.exit = Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = Quitter("quit", "Ctrl-D (i.e. EOF)")


def main(address_space, nproc, fsize, nofile, nice, preload):
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, address_space)
    if nproc > 0:  # 0: the pids cgroup bounds this sandbox alone (RLIMIT_NPROC is per uid)
        _limit(resource.RLIMIT_NPROC, nproc)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    os.nice(nice)  # a busy program must not starve the bot's own event loop
    _site()
    for name in filter(None, preload.split(",")):
        try:
            __import__(name)
        except ImportError:
            pass
    os.write(1, READY)
    size, cpu = (int(field) for field in _read_line(0).split())
    source = _read_exactly(0, size).decode("utf-8", errors="replace")
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _finish(_execute(source))


def _execute(source):
    module = types.ModuleType("__main__")
    module.__file__ = "<sandbox>"
    sys.modules["__main__"] = module
    sys.argv = ["<sandbox>"]
    try:
        exec(compile(source, "<sandbox>", "exec"), module.__dict__)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except BaseException as exc:  # the program's own error: print it like python would
        import linecache
        import traceback

        linecache.cache["<sandbox>"] = (len(source), None, source.splitlines(True), "<sandbox>")
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(status):
    """Exit like the interpreter would, minus its ~7 ms teardown of every module.

    Non-daemon threads are joined and atexit handlers run, as on a normal exit; what is
    skipped is only garbage collection of a process that is about to vanish anyway.
    """
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        import traceback

        traceback.print_exc()
        status = status or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            status = status or 120  # what python itself returns when stdout cannot be flushed
    os._exit(status)


main(*(int(value) for value in sys.argv[1:6]), sys.argv[6])
