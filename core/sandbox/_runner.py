"""Runs INSIDE the sandbox under Debian's /usr/bin/python3 (stdlib only; passed with `-c`).

It starts before any request exists (the warm pool), lowers its own rlimits, announces
READY on stdout, then blocks on stdin for one request: a JSON header line, the code, and
whatever follows is the program's own stdin. Each runner executes exactly one program.
"""

import json
import linecache
import os
import resource
import sys
import traceback
import types

READY = b"\x00guru-sandbox-ready\n"


def _limit(which, value):
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


def _read_line(fd):
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            sys.exit(0)  # the pool is shutting down: nothing to run
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


def main(limits):
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, limits["as"])
    _limit(resource.RLIMIT_NPROC, limits["nproc"])
    _limit(resource.RLIMIT_FSIZE, limits["fsize"])
    _limit(resource.RLIMIT_NOFILE, limits["nofile"])
    os.nice(limits.get("nice", 0))  # a busy program must not starve the bot's own event loop
    os.write(1, READY)
    header = json.loads(_read_line(0))
    source = _read_exactly(0, header["n"]).decode("utf-8", errors="replace")
    cpu = int(header["cpu_s"])
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    module = types.ModuleType("__main__")
    module.__file__ = "<sandbox>"
    sys.modules["__main__"] = module
    sys.argv = ["<sandbox>"]
    linecache.cache["<sandbox>"] = (len(source), None, source.splitlines(True), "<sandbox>")
    status = 0
    try:
        code = compile(source, "<sandbox>", "exec")
        exec(code, module.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # the program's own error: print it like python would
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        status = 1
    _finish(status)


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
        traceback.print_exc()
        status = status or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            status = status or 120  # what python itself returns when stdout cannot be flushed
    os._exit(status)


main(json.loads(sys.argv[1]))
