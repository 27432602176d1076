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
    try:
        code = compile(source, "<sandbox>", "exec")
        exec(code, module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # the program's own error: print it like python would
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(1)


main(json.loads(sys.argv[1]))
