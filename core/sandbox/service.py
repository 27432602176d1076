"""`Sandbox`: run untrusted Python in an isolated, single-use child process.

The first use finds the host's tools, picks the strongest mode (launch.py), compiles the
seccomp filter, prepares cgroups and runs the probe; if a required layer is missing every
`run` returns status "refused" with the reason (fail closed) unless the operator opted out.
With `pool_size > 0` that many sandboxes are started ahead of time and wait for code on
stdin, so a caller only pays hand-off + execution. Each is used once; the refill starts
after the caller's run has finished (in the background), so the caller's program never
competes with a spawn for the CPU. A caller finding the pool empty waits for a spawn
already under way, or starts its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from core.sandbox.child import Child, SandboxStartError, run_child, start_child
from core.sandbox.hierarchy import Version, remove_roots
from core.sandbox.limits import SandboxLimits
from core.sandbox.plan import ALLOW_MISSING_VAR, Plan, make_plan, parse_allow_missing
from core.sandbox.probe import PROBE_CODE, WAIVERS, layers_from_probe
from core.sandbox.result import Layer, SandboxResult, refused

if TYPE_CHECKING:
    from core.config import Settings

__all__ = ["Sandbox"]

log = logging.getLogger(__name__)

REFILL_BACKOFF_S = 5.0
# Imported by pooled runners before they are handed out: what PAL programs tend to use, paid
# off the caller's path. A cold start (pool_size=0) preloads nothing.
PRELOAD = (
    "math",
    "fractions",
    "decimal",
    "itertools",
    "functools",
    "collections",
    "statistics",
    "datetime",
    "re",
    "json",
)  # json: PAL's result line


def _how_to_fix(missing: list[Layer]) -> str:
    """What the host must provide for the missing layers, and the opt-out when one applies."""
    names = {layer.name for layer in missing}
    hints = []
    if names & {"cgroup pids", "cgroup memory"}:
        hints.append("cgroup v1, or v2 with memory and pids delegated to Guru")
    if names & {"seccomp", "no user namespaces"}:
        hints.append("seccomp (apt-get install python3-seccomp)")
    if not hints:
        return ""
    text = ". The host must provide " + " and ".join(hints)
    if names <= WAIVERS.keys():
        waiver = ",".join(sorted({WAIVERS[name] for name in names}))
        text += f" (or, unsafe: {ALLOW_MISSING_VAR}={waiver})"
    return text


class Sandbox:
    """Async service: `await run(code)`, `await check()`, `await aclose()`."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        pool_size: int = 0,
        allow_unsafe: bool = False,
        allow_missing: Iterable[str] = (),
        cgroup_version: Version = "auto",
        python: str = "/usr/bin/python3",
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.pool_size = pool_size
        self.allow_unsafe = allow_unsafe
        self.allow_missing = parse_allow_missing(allow_missing)
        self.cgroup_version: Version = cgroup_version
        self._python = python
        self._plan: Plan | None = None
        self._refusal: str | None = None
        self._verified = False
        self._start_lock = asyncio.Lock()  # concurrent first calls verify once
        self._ready: deque[Child] = deque()
        self._waiters: deque[asyncio.Future[Child]] = deque()
        self._starting = 0
        self._cleanups: set[asyncio.Task[None]] = set()
        self._spawns: set[asyncio.Task[None]] = set()
        self._refill_failed_at = float("-inf")
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 2) -> Sandbox:
        return cls(
            SandboxLimits.from_settings(settings),
            pool_size=pool_size,
            allow_unsafe=bool(getattr(settings, "sandbox_unsafe_allow_no_isolation", False)),
            allow_missing=getattr(settings, "sandbox_allow_missing", ()),
        )

    # -- preparation ---------------------------------------------------------------------

    async def _get_plan(self) -> Plan:
        if self._plan is None:
            self._plan = await make_plan(
                self._python, self.allow_unsafe, self.allow_missing, self.cgroup_version
            )
        return self._plan

    async def start(self) -> str | None:
        """Prepare and verify once, then fill the pool; the refusal reason, or None when usable."""
        async with self._start_lock:
            if not self._verified:
                await self._verify()
        if self._refusal is None:
            self._schedule_refill()
        return self._refusal

    async def _verify(self) -> None:
        """Fail closed: refuse unless the probe saw every required layer (or opted out)."""
        plan = await self._get_plan()
        if plan.mode is None:
            self._refusal = plan.reason
        elif plan.mode != "unsafe":
            layers = await self.check()
            missing = [layer for layer in layers if layer.required and not layer.active]
            refused_by = [layer for layer in missing if not layer.waived]
            if refused_by:
                self._refusal = (
                    "required sandbox layers are not active: "
                    + ", ".join(layer.name for layer in refused_by)
                    + f" ({refused_by[0].name}: {refused_by[0].detail})"
                    + _how_to_fix(refused_by)
                )
            for layer in missing:
                if layer.waived:
                    log.warning(
                        "sandbox runs WITHOUT %s (%s; allowed by %s)",
                        layer.name,
                        layer.detail,
                        ALLOW_MISSING_VAR,
                    )
        self._verified = True
        if self._refusal:
            log.error("sandbox refuses to run code: %s", self._refusal)

    # -- the pool ------------------------------------------------------------------------

    async def _start_child(self, preload: tuple[str, ...] = ()) -> Child:
        plan = await self._get_plan()
        assert plan.mode is not None
        return await start_child(
            plan.mode,
            plan.tools,
            self.limits,
            bpf=plan.bpf,
            roots=plan.roots,
            preload=preload,
            nproc=plan.nproc,
        )

    def _schedule_refill(self) -> None:
        """Start one sandbox per empty pool slot, concurrently (2 cores spawn twice as fast)."""
        if self.pool_size <= 0 or self._closed:
            return
        if time.monotonic() - self._refill_failed_at < REFILL_BACKOFF_S:
            return  # a broken host must not turn every call into a spawn storm
        for _ in range(self.pool_size - len(self._ready) - self._starting):
            self._starting += 1
            task = asyncio.get_running_loop().create_task(self._spawn_one())
            self._spawns.add(task)
            task.add_done_callback(self._spawns.discard)

    async def _spawn_one(self) -> None:
        try:
            child = await self._start_child(PRELOAD)
        except SandboxStartError as exc:
            log.warning("sandbox pool refill failed: %s", exc)
            self._refill_failed_at = time.monotonic()
            while self._waiters:  # they start their own and report the failure
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        finally:
            self._starting -= 1
        if self._closed:
            await child.destroy()
            return
        self._deliver(child)

    def _deliver(self, child: Child) -> None:
        """Hand a fresh sandbox to the oldest caller waiting for one, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(child)
                return
        self._ready.append(child)

    async def _take(self) -> Child:
        while self._ready:
            child = self._ready.popleft()
            if child.proc.returncode is None:
                return child
            await child.destroy()
        if self._starting > len(self._waiters):
            # A refill already under way is further along than a new cold start would be.
            waiter: asyncio.Future[Child] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                return await waiter
            except SandboxStartError:
                pass
        return await self._start_child()

    def _background(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def wait_pool(self, timeout_s: float = 30.0) -> bool:
        """Wait until the pool is full (benchmarks, tests); False on refusal or timeout."""
        if await self.start() is not None:
            return False
        deadline = time.monotonic() + timeout_s
        while len(self._ready) < self.pool_size and time.monotonic() < deadline:
            if time.monotonic() - self._refill_failed_at < REFILL_BACKOFF_S:
                return False
            self._schedule_refill()
            await asyncio.sleep(0.005)
        return len(self._ready) >= self.pool_size

    # -- public API ----------------------------------------------------------------------

    async def run(
        self, code: str, timeout_s: float | None = None, stdin: str = ""
    ) -> SandboxResult:
        """Run `code` as a Python program; never raises for anything the program does."""
        if self._closed:
            return refused("The sandbox is shut down.")
        refusal = await self.start()
        if refusal is not None:
            return refused(refusal)
        timeout = self.limits.timeout_s if timeout_s is None else max(0.01, float(timeout_s))
        if len(stdin.encode()) > self.limits.stdin_bytes:
            return refused(f"stdin is larger than {self.limits.stdin_bytes} bytes.")
        if len(code.encode(errors="replace")) > self.limits.code_bytes:
            return refused(f"The program is larger than {self.limits.code_bytes} bytes.")
        try:
            child = await self._take()
        except SandboxStartError as exc:
            log.error("%s", exc)
            return refused(str(exc))
        try:
            return await run_child(child, code, stdin, timeout, self._background)
        finally:
            # Refill only now: a spawn racing the caller's program for 2 cores would be paid
            # by the caller (measured: +5-10 ms p50).
            self._schedule_refill()

    async def check(self) -> list[Layer]:
        """Each isolation layer, judged by a probe run inside a fresh sandbox."""
        plan = await self._get_plan()
        measured: dict[str, tuple[bool, str]] = {}
        report, error = None, ""
        if plan.mode is not None:
            try:
                child = await self._start_child()
                if child.cgroup is not None:  # measured on the probe's own sandbox
                    measured = child.cgroup.verify(child.proc.pid)
                result = await run_child(child, PROBE_CODE, "", 10.0)
                report = json.loads(result.stdout) if result.ok else None
                error = "" if result.ok else (result.error or result.status)
            except (SandboxStartError, ValueError) as exc:
                error = str(exc)
        ctx = plan.context(self.limits, self.allow_missing, measured)
        return layers_from_probe(ctx, report, error if plan.mode is not None else plan.reason)

    @property
    def cgroup_label(self) -> str:
        """ "cgroup v1" / "cgroup v2" / "no cgroup" once prepared (after start or check)."""
        roots = self._plan.roots if self._plan else None
        return roots.label if roots else "no cgroup"

    async def aclose(self) -> None:
        """Stop refilling and destroy every waiting sandbox."""
        self._closed = True
        for task in list(self._spawns):
            task.cancel()
        if self._spawns:
            await asyncio.gather(*self._spawns, return_exceptions=True)
        while self._waiters:
            self._waiters.popleft().cancel()
        while self._ready:
            await self._ready.popleft().destroy()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        plan = self._plan
        if plan is not None and plan.roots is not None:
            remove_roots(plan.roots)
