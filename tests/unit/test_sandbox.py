"""Pure parts of the sandbox: output capping, result classification, mode choice, the bwrap
command line, and turning a probe report into layers. The real thing is tested in
tests/integration/test_sandbox.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ConfigError
from core.sandbox import Sandbox, SandboxLimits
from core.sandbox import plan as plan_module
from core.sandbox.launch import HostTools, choose_mode, runner_args, sandbox_argv
from core.sandbox.plan import parse_allow_missing
from core.sandbox.probe import ProbeContext, layers_from_probe
from core.sandbox.result import Layer, OutputBuffer, classify, refused
from core.sandbox.service import _how_to_fix
from tests.fixtures.sandbox_host import isolation_mark

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
    mode, reason = choose_mode(tools(bwrap=None, euid=1000), allow_unsafe=True)
    assert mode == "unsafe" and "WITHOUT isolation" in reason


def test_unsafe_opt_out_is_refused_when_the_bot_runs_as_root() -> None:
    mode, reason = choose_mode(tools(bwrap=None), allow_unsafe=True)
    assert mode is None and "runs as root" in reason and "bubblewrap" in reason


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
    monkeypatch.setattr(plan_module, "find_tools", lambda python: tools(bwrap=None))
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


def test_rlimit_nproc_is_left_to_the_pids_cgroup() -> None:
    # RLIMIT_NPROC counts every process of uid 65534 on the host: with a pids cgroup it is
    # not lowered, so one sandbox's fork bomb cannot make another's fork fail.
    assert runner_args(SandboxLimits())[1] == "0"
    assert runner_args(SandboxLimits(processes=32), nproc=True)[1] == "64"
    unsafe = sandbox_argv("unsafe", tools(euid=1000), SandboxLimits(processes=32))
    assert unsafe[-5] == "64"  # no cgroup in unsafe mode: the rlimit is all there is


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
    "userns": {"unshare": "EPERM", "clone": "EPERM"},
    "rlimits": {"AS": 2**30, "NPROC": 9999, "FSIZE": 16 * 2**20, "NOFILE": 64, "CPU": 6, "CORE": 0},
}
CGROUPS = {
    "pids": (True, "cgroup v2 /cg/x: pids.max=64"),
    "memory": (True, "cgroup v2 /cg/x: memory.max=268435456"),
    "cpu": (False, "cgroup v2: cpu is not delegated to /cg"),
}


def _ctx(**changes) -> ProbeContext:
    host_ns = {n: f"{n}:[1]" for n in ("net", "pid", "mnt", "ipc", "uts")}
    values = {
        "mode": "root",
        "bwrap": "bwrap",
        "host_ns": host_ns,
        "euid": 0,
        "limits": SandboxLimits(),
        "cgroups": CGROUPS,
        "seccomp_detail": "100 BPF instructions",
        **changes,
    }
    return ProbeContext(**values)


def _layers(ctx: ProbeContext, report=GOOD_REPORT) -> dict[str, Layer]:
    return {layer.name: layer for layer in layers_from_probe(ctx, report)}


def test_good_probe_report_means_every_required_layer_is_active() -> None:
    layers = layers_from_probe(_ctx(), GOOD_REPORT)
    assert all(layer.active for layer in layers if layer.required)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["cgroup pids"].active and by_name["cgroup memory"].active
    assert not by_name["cgroup cpu"].active and not by_name["cgroup cpu"].required
    assert by_name["seccomp"].active and by_name["no user namespaces"].active


@pytest.mark.parametrize("name", ["cgroup pids", "cgroup memory", "seccomp", "no user namespaces"])
def test_cgroup_seccomp_and_userns_layers_are_required(name) -> None:
    assert _layers(_ctx())[name].required


def test_missing_cgroups_are_missing_required_layers() -> None:
    missing = {c: (False, "cgroup v2: memory is not delegated") for c in ("pids", "memory")}
    layers = _layers(_ctx(cgroups=missing))
    for name in ("cgroup pids", "cgroup memory"):
        assert not layers[name].active and layers[name].required and not layers[name].waived
    assert "not delegated" in layers["cgroup memory"].detail


def test_missing_seccomp_is_a_missing_required_layer() -> None:
    layers = _layers(_ctx(seccomp_detail="libseccomp unavailable"), {**GOOD_REPORT, "Seccomp": "0"})
    assert not layers["seccomp"].active and not layers["seccomp"].waived


def test_a_user_namespace_created_inside_is_a_missing_layer() -> None:
    report = {**GOOD_REPORT, "userns": {"unshare": "created", "clone": "EPERM"}}
    layer = _layers(_ctx(), report)["no user namespaces"]
    assert not layer.active and layer.required and "unshare created" in layer.detail


def test_the_opt_out_waives_only_the_named_layers() -> None:
    report = {**GOOD_REPORT, "Seccomp": "0", "userns": {"unshare": "created"}, "writable": ["/"]}
    missing = {c: (False, "no cgroup v1 memory hierarchy") for c in ("pids", "memory")}
    waived = _layers(_ctx(cgroups=missing, allow_missing=frozenset({"cgroup"})), report)
    assert waived["cgroup pids"].waived and waived["cgroup memory"].waived
    assert not waived["seccomp"].waived and not waived["no user namespaces"].waived
    assert not waived["read-only filesystem"].waived  # never waivable
    both = _layers(_ctx(cgroups=missing, allow_missing=frozenset({"cgroup", "seccomp"})), report)
    assert both["seccomp"].waived and both["no user namespaces"].waived


def test_the_opt_out_accepts_only_known_layer_names() -> None:
    assert parse_allow_missing("cgroup, Seccomp") == {"cgroup", "seccomp"}
    assert parse_allow_missing("") == frozenset()
    with pytest.raises(ValueError, match="bwrap"):
        parse_allow_missing("cgroup,bwrap")
    assert Settings.from_env({"GURU_SANDBOX_ALLOW_MISSING": "seccomp"}, None).sandbox_allow_missing
    with pytest.raises(ConfigError, match="GURU_SANDBOX_ALLOW_MISSING"):
        Settings.from_env({"GURU_SANDBOX_ALLOW_MISSING": "namespaces"}, None)


def test_refusal_says_what_the_host_must_provide_and_the_opt_out() -> None:
    cgroup = [Layer("cgroup memory", False, "", True), Layer("seccomp", False, "", True)]
    text = _how_to_fix(cgroup)
    assert "delegated" in text and "python3-seccomp" in text
    assert "GURU_SANDBOX_ALLOW_MISSING=cgroup,seccomp" in text
    assert "ALLOW_MISSING" not in _how_to_fix([*cgroup, Layer("namespaces", False, "", True)])


def test_rlimits_check_nproc_only_without_a_pids_cgroup() -> None:
    assert _layers(_ctx())["rlimits"].active  # NPROC 9999: left alone, the cgroup bounds it
    assert not _layers(_ctx(nproc=True))["rlimits"].active


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


# -- the attack suite on a host without isolation ---------------------------------------------


def test_attack_suite_skips_with_the_reason_outside_ci() -> None:
    mark = isolation_mark("missing bubblewrap", env={})
    assert mark.name == "skip" and "missing bubblewrap" in mark.kwargs["reason"]
    assert isolation_mark(None, env={"CI": "true"}).args == (False,)  # runs


def test_attack_suite_fails_instead_of_skipping_in_ci(tmp_path, monkeypatch) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI=true.*missing bubblewrap"):
        isolation_mark("missing bubblewrap", env={"CI": "true"})
    # The same as pytest sees it: a collection error, so the run fails, not 43 quiet skips.
    module = tmp_path / "test_attacks.py"
    module.write_text(
        "from tests.fixtures.sandbox_host import isolation_mark\n"
        "pytestmark = isolation_mark('no cgroup')\n"
        "def test_attack():\n    pass\n"
    )
    monkeypatch.setenv("CI", "true")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert run.returncode != 0 and "no cgroup" in run.stdout, run.stdout[-500:]
