"""Pure parts of the sandbox: output capping, result classification, mode choice, the bwrap
command line, and turning a probe report into layers. The real thing is tested in
tests/integration/test_sandbox.py."""

from __future__ import annotations

import signal

import pytest

from core.config import Settings
from core.sandbox import Sandbox, SandboxLimits
from core.sandbox import service as service_module
from core.sandbox.launch import HostTools, choose_mode, runner_args, sandbox_argv
from core.sandbox.probe import ProbeContext, layers_from_probe
from core.sandbox.result import OutputBuffer, classify, refused

ROOT_TOOLS = HostTools(
    "/usr/bin/bwrap",
    "bubblewrap 0.8.0",
    "/usr/bin/setpriv",
    "/usr/bin/python3.11",
    "/usr/bin/sh",
    0,
    True,
)


def tools(**changes) -> HostTools:
    values = {**ROOT_TOOLS.__dict__, **changes}
    return HostTools(**values)


# -- output ---------------------------------------------------------------------------------


def test_output_buffer_keeps_the_head_and_counts_the_rest() -> None:
    buf = OutputBuffer(10)
    for _ in range(5):
        buf.feed(b"abcdef")
    assert buf.total == 30 and buf.truncated
    assert buf.text().startswith("abcdefabcd") and "20 more bytes" in buf.text()


def test_output_buffer_under_the_cap_is_verbatim() -> None:
    buf = OutputBuffer(100)
    buf.feed("héllo\n".encode())
    assert not buf.truncated and buf.text() == "héllo\n"


def test_output_buffer_survives_a_split_utf8_character() -> None:
    buf = OutputBuffer(2)
    buf.feed("é€".encode())
    assert buf.truncated and "output truncated" in buf.text()


# -- classification -------------------------------------------------------------------------


def _classify(code, **kw):
    args = {
        "timed_out": False,
        "oom_killed": False,
        "flooded": False,
        "stderr_tail": "",
        "timeout_s": 5.0,
        **kw,
    }
    return classify(code, **args)


def test_clean_exit_is_ok() -> None:
    assert _classify(0) == ("ok", None, None)


def test_error_uses_the_last_stderr_line() -> None:
    status, error, _ = _classify(1, stderr_tail="Traceback...\n  x\nValueError: bad\n")
    assert status == "error" and error == "ValueError: bad"


def test_timeout_wins_over_everything() -> None:
    assert _classify(None, timed_out=True, oom_killed=True)[0] == "timeout"


def test_sigxcpu_from_the_cpu_rlimit_is_a_timeout() -> None:
    status, _, sig = _classify(128 + signal.SIGXCPU)
    assert status == "timeout" and sig == signal.SIGXCPU


def test_cgroup_oom_and_memoryerror_are_oom() -> None:
    assert _classify(137, oom_killed=True)[0] == "oom"
    assert _classify(1, stderr_tail="Traceback\nMemoryError\n")[0] == "oom"


def test_flood_and_signals_are_killed() -> None:
    assert _classify(137, flooded=True)[0] == "killed"
    status, error, sig = _classify(128 + signal.SIGSEGV)
    assert status == "killed" and "SIGSEGV" in error and sig == signal.SIGSEGV


def test_refused_result_is_not_ok() -> None:
    result = refused("no bwrap")
    assert not result.ok and result.status == "refused" and result.error == "no bwrap"
    assert set(result.public()) >= {
        "ok",
        "stdout",
        "stderr",
        "exit_code",
        "timed_out",
        "elapsed_ms",
        "error",
    }


# -- mode choice (fail closed) --------------------------------------------------------------


def test_root_with_bwrap_and_setpriv_is_root_mode() -> None:
    assert choose_mode(ROOT_TOOLS, allow_unsafe=False)[0] == "root"


def test_missing_bwrap_refuses_and_says_how_to_fix() -> None:
    mode, reason = choose_mode(tools(bwrap=None), allow_unsafe=False)
    assert mode is None and "apt-get install bubblewrap" in reason


def test_missing_bwrap_with_the_opt_out_runs_unsafe() -> None:
    mode, reason = choose_mode(tools(bwrap=None), allow_unsafe=True)
    assert mode == "unsafe" and "WITHOUT isolation" in reason


def test_old_bubblewrap_refuses_with_the_version() -> None:
    mode, reason = choose_mode(tools(bwrap_version="bubblewrap 0.6.1"), allow_unsafe=False)
    assert mode is None and "0.6.1" in reason
    assert choose_mode(tools(bwrap_version="bubblewrap 0.11.0"), allow_unsafe=False)[0] == "root"


def test_not_root_uses_a_user_namespace_or_refuses() -> None:
    assert choose_mode(tools(euid=1000), allow_unsafe=False)[0] == "userns"
    mode, reason = choose_mode(tools(euid=1000, userns=False), allow_unsafe=False)
    assert mode is None and "user namespaces" in reason


def test_no_system_python_refuses_even_with_the_opt_out() -> None:
    assert choose_mode(tools(python=None), allow_unsafe=True)[0] is None


async def test_sandbox_refuses_when_isolation_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(service_module, "find_tools", lambda python: tools(bwrap=None))
    box = Sandbox()
    result = await box.run("print(1)")
    assert result.status == "refused" and "bubblewrap" in result.error
    await box.aclose()


# -- the command line -----------------------------------------------------------------------


def test_root_argv_has_every_layer() -> None:
    argv = sandbox_argv("root", ROOT_TOOLS, SandboxLimits(), seccomp_fd=7)
    for flag in (
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--new-session",
        "--die-with-parent",
        "--clearenv",
        "--proc",
        "--tmpfs",
    ):
        assert flag in argv, flag
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--seccomp") + 1] == "7"
    assert "--reuid=65534" in argv and "--no-new-privs" in argv and "--bounding-set=-all" in argv
    assert "--unshare-user" not in argv  # pitfall 1: --uid under a user ns maps to host root
    assert argv[-6:] == runner_args(SandboxLimits()) and "-S" in argv


def test_argv_binds_nothing_private() -> None:
    argv = sandbox_argv("root", ROOT_TOOLS, SandboxLimits())
    paths = [a for a in argv if a.startswith("/")]
    for forbidden in ("/root", "/usr/local", "/work", "/home", "/var", "/etc/shadow", "/sys"):
        assert not any(p == forbidden or p.startswith(forbidden + "/") for p in paths), forbidden
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert "--bind" not in argv and "/usr/bin/python3.11" in binds


def test_sandbox_env_carries_no_secrets() -> None:
    argv = sandbox_argv("root", ROOT_TOOLS, SandboxLimits())
    names = [argv[i + 1] for i, a in enumerate(argv) if a == "--setenv"]
    assert set(names) == {"PATH", "HOME", "LANG"}


def test_cgroup_join_comes_before_bwrap() -> None:
    argv = sandbox_argv("root", ROOT_TOOLS, SandboxLimits(), cgroup_procs=["/cg/a/cgroup.procs"])
    assert argv[0] == "/usr/bin/sh"
    assert argv.index("/cg/a/cgroup.procs") < argv.index("/usr/bin/bwrap")


def test_userns_argv_maps_to_nobody_without_setpriv() -> None:
    argv = sandbox_argv("userns", tools(euid=1000), SandboxLimits())
    assert "--unshare-user" in argv and "--disable-userns" in argv
    assert argv[argv.index("--uid") + 1] == "65534" and "/usr/bin/setpriv" not in argv


def test_unsafe_argv_is_the_runner_alone() -> None:
    argv = sandbox_argv("unsafe", ROOT_TOOLS, SandboxLimits())
    assert argv[0] == "/usr/bin/python3.11" and "-I" in argv and "bwrap" not in " ".join(argv)


def test_runner_limits_follow_the_settings() -> None:
    limits = SandboxLimits.from_settings(Settings(sandbox_timeout_s=2.5, sandbox_memory_mb=64))
    assert limits.timeout_s == 2.5 and limits.memory_mb == 64 and limits.cpu_s(2.5) == 4
    address_space, nproc, fsize, nofile, nice, preload = runner_args(limits, ("math", "re"))
    assert int(fsize) == 16 * 2**20 and int(nofile) == 64 and preload == "math,re"


# -- probe -> layers ------------------------------------------------------------------------

GOOD_REPORT = {
    "ids": [65534] * 4,
    "groups": [],
    "CapEff": "0" * 16,
    "CapBnd": "0" * 16,
    "Seccomp": "2",
    "NoNewPrivs": "1",
    "ns": {n: f"{n}:[2]" for n in ("net", "pid", "mnt", "ipc", "uts", "user")},
    "env": ["HOME", "LANG", "PATH", "PWD"],
    "root": ["bin", "dev", "etc", "lib", "lib64", "proc", "tmp", "usr"],
    "pids": [1, 2],
    "ifaces": ["lo"],
    "net": "Network is unreachable",
    "writable": [],
    "tmp_bytes": 16 * 2**20,
    "rlimits": {"AS": 2**30, "NPROC": 128, "FSIZE": 16 * 2**20, "NOFILE": 64, "CPU": 6, "CORE": 0},
}


def _ctx() -> ProbeContext:
    host_ns = {n: f"{n}:[1]" for n in ("net", "pid", "mnt", "ipc", "uts")}
    return ProbeContext(
        "root",
        "bwrap",
        host_ns,
        0,
        SandboxLimits(),
        {"pids": "/cg/p", "memory": None},
        {"pids": "/cg/p", "memory": "not writable"},
        "100 BPF instructions",
    )


def test_good_probe_report_means_every_required_layer_is_active() -> None:
    layers = layers_from_probe(_ctx(), GOOD_REPORT)
    assert all(layer.active for layer in layers if layer.required)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["cgroup pids"].active and not by_name["cgroup memory"].active
    assert by_name["seccomp"].active


@pytest.mark.parametrize(
    ("change", "layer"),
    [
        ({"writable": ["/usr"]}, "read-only filesystem"),
        ({"root": ["usr", "root"]}, "read-only filesystem"),
        ({"env": ["PATH", "DISCORD_TOKEN"]}, "empty environment"),
        ({"ids": [0, 0, 0, 0]}, "unprivileged uid"),
        ({"CapEff": "000001ffffffffff"}, "unprivileged uid"),
        ({"ifaces": ["lo", "eth0"]}, "no network"),
        ({"ns": {"net": "net:[1]", "pid": "pid:[2]"}}, "namespaces"),
        ({"rlimits": {"AS": -1}}, "rlimits"),
        ({"tmp_bytes": None}, "private tmp"),
    ],
)
def test_a_missing_layer_is_reported(change, layer) -> None:
    layers = {layer.name: layer for layer in layers_from_probe(_ctx(), {**GOOD_REPORT, **change})}
    assert not layers[layer].active and layers[layer].required


def test_no_probe_means_required_layers_are_missing() -> None:
    layers = layers_from_probe(_ctx(), None, "bwrap: setting up uid map: Permission denied")
    assert not all(layer.active for layer in layers if layer.required)
    assert "Permission denied" in layers[0].detail
