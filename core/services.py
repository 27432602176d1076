"""`Services`: everything a Guru process needs, built once at start and passed down.

The bot's `setup_hook`, `guru chat`, `guru serve` and the CLI commands all open one of these;
nothing else holds process-wide state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from core.config import Settings
from core.db.pool import Database
from core.fairuse import FairUse
from core.llm.backend import open_llm
from core.llm.models.loading import ModelCache
from core.llm.types import LLMBackend
from core.rag.embedder import Embedder
from core.sandbox import Sandbox
from core.tuning.hotswap import AdapterListener, GuildAdapters

if TYPE_CHECKING:
    from core.answering import Answers
    from core.pal.solver import PalSolver
    from core.rag.kb import KnowledgeBase

__all__ = ["Services"]

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    llm: LLMBackend | None = None
    db: Database | None = None
    models: ModelCache = field(default_factory=ModelCache)
    # The sentence encoder for RAG: free to construct, loads its weights on first use.
    embedder: Embedder = field(default_factory=Embedder)
    # The model that writes /calc programs (GURU_CALC_MODEL): loaded on first use.
    _calc_llm: LLMBackend | None = field(default=None, init=False, repr=False)
    _calc_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    # Runs model-written code (/calc): probed and pre-warmed on first use or at open.
    sandbox: Sandbox | None = None
    _sandbox_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    # The LoRA adapter serving each guild (callers fill `Request.adapter` from it); kept
    # current by the adapter listener (LISTEN/NOTIFY) once started.
    guild_adapters: GuildAdapters = field(default_factory=GuildAdapters)
    _adapter_listener: AdapterListener | None = field(default=None, init=False, repr=False)
    _llm_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _synced_guilds: set[int] = field(default_factory=set, init=False, repr=False)
    # GURU_GROUNDED_ADAPTER's engine name once loaded ("" when off or it cannot serve)
    _grounded: str | None = field(default=None, init=False, repr=False)
    _grounded_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    @classmethod
    async def open(
        cls, settings: Settings, *, llm: bool = True, db: bool = True, sandbox: bool = False
    ) -> Services:
        """Start what was asked for, concurrently (the database starts while the model loads)."""
        services = cls(settings)
        starting = {}
        if db:
            starting["db"] = Database.open(settings)
        if llm:
            starting["llm"] = open_llm(settings, services.models)
        if sandbox:
            starting["sandbox"] = services.code_sandbox()
        results = await asyncio.gather(*starting.values(), return_exceptions=True)
        failure: BaseException | None = None
        for name, result in zip(starting, results):
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                setattr(services, name, result)
        if failure is not None:
            await services.aclose()  # release what did start before reporting the failure
            raise failure
        return services

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        """Ingest and search over `db` (built once: the ingestor caches its chunker)."""
        from core.rag.kb import KnowledgeBase

        if self.db is None:
            raise RuntimeError("the knowledge base needs Services opened with db=True")
        from core.rag.limits import IngestLimits

        limits = IngestLimits.from_settings(self.settings)
        return KnowledgeBase.open(self.db.pool, self.embedder, limits)

    @cached_property
    def answers(self) -> Answers:
        """The one answering path of /ask, /explain and their CLI faces (core.answering)."""
        from core.answering import Answers

        return Answers(self)

    @cached_property
    def fair_use(self) -> FairUse:
        """The rate limits every model and sandbox command counts against (one per process:
        /ask, /explain and /calc share each person's and each server's budget)."""
        return FairUse(self.settings)

    async def ensure_llm(self) -> LLMBackend:
        """The chat model, opened on first use: CLI commands load it only when they need it."""
        async with self._llm_lock:
            if self.llm is None:
                self.llm = await open_llm(self.settings, self.models)
        return self.llm

    async def adapter_for(self, guild_id: int | None) -> str | None:
        """`Request.adapter` for a guild's request. A long-running process follows activations
        through the listener; a CLI command loads the guild's active adapter once, here."""
        if (
            guild_id is not None
            and self._adapter_listener is None
            and self.db is not None
            and hasattr(self.llm, "load_adapter")
            and guild_id not in self._synced_guilds
        ):
            await AdapterListener(
                self.db.pool, self.llm, self.guild_adapters, base_model=self.settings.model
            ).sync_guild(guild_id)
            self._synced_guilds.add(guild_id)
        # a guild's own adapter replaces the shipped grounded one (core/answering/grounded.py)
        return self.guild_adapters.adapter_for(guild_id) or await self.grounded_adapter()

    async def grounded_adapter(self) -> str | None:
        """The engine name of GURU_GROUNDED_ADAPTER, loaded on first use; None when it is off,
        the backend serves no adapters (remote) or it cannot serve this model (logged once)."""
        async with self._grounded_lock:
            if self._grounded is None:
                self._grounded = await self._load_grounded()
        return self._grounded or None

    async def _load_grounded(self) -> str:
        from core.answering.grounded import ENGINE_NAME, resolve

        found = resolve(self.settings.grounded_adapter, self.settings.model)
        if found is None:
            return ""
        llm = await self.ensure_llm()
        if not hasattr(llm, "load_adapter"):
            log.warning("GURU_GROUNDED_ADAPTER is ignored: the remote model serves no adapters")
            return ""
        if found.adapter_dir is None:
            log.warning("GURU_GROUNDED_ADAPTER=%s is not served: %s", found.path, found.problem)
            return ""
        if ENGINE_NAME not in llm.adapters.names():  # type: ignore[attr-defined]
            await llm.load_adapter(ENGINE_NAME, str(found.adapter_dir))
        log.info("grounded adapter %s serves servers without their own", found.adapter_dir)
        return ENGINE_NAME

    async def calc_llm(self) -> LLMBackend:
        """The PAL model; the core LLM itself when GURU_CALC_MODEL resolves to the same one."""
        async with self._calc_lock:
            if self._calc_llm is None:
                from core.pal.model import open_calc_llm

                self._calc_llm = await open_calc_llm(self.settings, self.models, self.llm)
        return self._calc_llm

    async def code_sandbox(self) -> Sandbox:
        """The sandbox for model-written code; a refusal (no isolation) is reported per run."""
        async with self._sandbox_lock:
            if self.sandbox is None:
                sandbox = Sandbox.from_settings(self.settings)
                reason = await sandbox.start()
                if reason:
                    log.warning("the code sandbox refuses to run code: %s", reason)
                self.sandbox = sandbox
        return self.sandbox

    async def pal_solver(self) -> PalSolver:
        """The /calc solver: the sandbox first (a refusing one fails now, before a code model
        loads for nothing), then the calc model. `guru calc`, /calc and `guru chat` use it."""
        from core.pal.execute import SandboxRefused
        from core.pal.solver import PalSolver

        sandbox = await self.code_sandbox()
        refusal = await sandbox.start()
        if refusal:
            raise SandboxRefused(f"The sandbox refuses to run code here: {refusal}")
        return PalSolver(
            await self.calc_llm(),
            sandbox,
            timeout_s=self.settings.sandbox_timeout_s,
            temperature=self.settings.temperature or 0.7,
            samples=self.settings.calc_samples,
        )

    async def start_adapter_listener(self) -> None:
        """Follow `guru tune activate/rollback` into the local engine; no-op for a remote LLM."""
        if self._adapter_listener is not None or self.db is None:
            return
        if not hasattr(self.llm, "load_adapter"):  # remote backends serve their own adapters
            return
        self._adapter_listener = AdapterListener(
            self.db.pool, self.llm, self.guild_adapters, base_model=self.settings.model
        )
        self._adapter_listener.start()
        try:  # the first sync loads every guild's active adapter before we report ready
            await asyncio.wait_for(self._adapter_listener.listening.wait(), 60)
        except TimeoutError:
            log.warning("adapter listener not ready after 60 s; it keeps retrying")

    async def aclose(self) -> None:
        if self._adapter_listener is not None:
            await self._adapter_listener.aclose()
            self._adapter_listener = None
        if self.sandbox is not None:
            await self.sandbox.aclose()
            self.sandbox = None
        if self._calc_llm is not None and self._calc_llm is not self.llm:
            await self._calc_llm.aclose()
        self._calc_llm = None
        self.embedder.close()
        if self.llm is not None:
            await self.llm.aclose()
            self.llm = None
        if self.db is not None:
            await self.db.aclose()
            self.db = None
