"""Activated adapters reach a running engine without a restart: `LISTEN guru_adapters`.

`GuildAdapters` is the routing map callers read to fill `Request.adapter` for a guild. The
`AdapterListener` keeps it in step with the `adapters` table: at start (and after every
reconnect, since notifications sent while disconnected are lost) it syncs every guild; on each
notification it re-reads that guild's active row — the payload is only a hint — loads the new
version under a versioned name (`g<guild>-v<version>`), points the map at it, and unloads the
old version once no request uses it. Other guilds' entries are never touched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

from core.db.pool import Pool
from core.tuning.registry import ADAPTERS_CHANNEL, Adapter, AdapterRepo, other_base_model

__all__ = ["GuildAdapters", "AdapterListener"]

log = logging.getLogger(__name__)


class GuildAdapters:
    """guild id -> the engine adapter name serving it (absent = the base model)."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def adapter_for(self, guild_id: int | None) -> str | None:
        """What to put in `Request.adapter` for a request from `guild_id`."""
        return None if guild_id is None else self._names.get(guild_id)

    def set(self, guild_id: int, name: str | None) -> None:
        if name is None:
            self._names.pop(guild_id, None)
        else:
            self._names[guild_id] = name

    def snapshot(self) -> dict[int, str]:
        return dict(self._names)


class AdapterListener:
    """One task per process that owns the engine: applies activations as they happen."""

    def __init__(
        self,
        pool: Pool,
        engine: Any,
        routes: GuildAdapters,
        *,
        unload_grace_s: float = 2.0,
        retry_s: float = 5.0,
        base_model: str | None = None,
    ) -> None:
        self.pool, self.engine, self.routes = pool, engine, routes
        self.base_model = base_model  # GURU_MODEL: adapters of another preset are not loaded
        self.repo = AdapterRepo(pool)
        self.unload_grace_s = unload_grace_s  # requests that read the old name just before a swap
        self.retry_s = retry_s
        self.listening = asyncio.Event()  # set once LISTEN is in place and the first sync is done
        self._task: asyncio.Task[None] | None = None
        self._unloads: dict[str, asyncio.Task[None]] = {}  # engine name -> its pending unload
        self._switching = asyncio.Lock()  # one swap at a time, whoever calls sync_*

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="guru-adapter-listener")

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._unloads.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.pool.conninfo, autocommit=True, application_name="guru-adapters"
                ) as conn:
                    await conn.execute(f"LISTEN {ADAPTERS_CHANNEL}")
                    await self.sync_all()
                    self.listening.set()
                    async for note in conn.notifies():
                        await self._on_notify(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep serving; resync after reconnecting
                log.warning("adapter listener lost its connection; retrying", exc_info=True)
                self.listening.clear()
                await asyncio.sleep(self.retry_s)

    async def _on_notify(self, payload: str) -> None:
        try:
            guild_id = int(payload)
        except ValueError:
            log.warning("ignoring adapter notification %r", payload)
            return
        try:
            await self.sync_guild(guild_id)
        except Exception:  # noqa: BLE001 - one bad adapter must not stop the listener
            log.exception(
                "could not switch guild %d's adapter; it keeps the previous one", guild_id
            )

    async def sync_all(self) -> None:
        """Load every guild's active adapter, and drop routes whose guild has none now."""
        active = {a.guild_id: a for a in await self.repo.all_active()}
        for guild_id in set(self.routes.snapshot()) | set(active):
            try:
                await self._apply(guild_id, active.get(guild_id))
            except Exception:  # noqa: BLE001 - the other guilds still get theirs
                log.exception("could not load guild %d's adapter", guild_id)

    async def sync_guild(self, guild_id: int) -> None:
        await self._apply(guild_id, await self.repo.active(guild_id))

    async def _apply(self, guild_id: int, adapter: Adapter | None) -> None:
        async with self._switching:
            await self._switch(guild_id, adapter)

    async def _switch(self, guild_id: int, adapter: Adapter | None) -> None:
        if adapter is not None and (why := other_base_model(adapter, self.base_model)):
            log.warning("guild %d serves the base model: its %s", guild_id, why)
            adapter = None
        old = self.routes.adapter_for(guild_id)
        new = adapter.engine_name if adapter else None
        if new == old:
            return
        if new is not None and new in self._unloads:
            # Re-activated while its unload is pending: let that finish, then load it afresh,
            # so an unload already queued on the engine cannot remove it after we route to it.
            await asyncio.gather(self._unloads[new], return_exceptions=True)
        if adapter is not None and new not in self.engine.adapters.names():
            await self.engine.load_adapter(new, adapter.path)  # between decode steps
        self.routes.set(guild_id, new)  # from here on, this guild's new requests use `new`
        log.info("guild %d: adapter %s -> %s", guild_id, old or "base", new or "base")
        if old is not None and old not in self._unloads:
            task = asyncio.create_task(self._unload_later(old))
            self._unloads[old] = task
            task.add_done_callback(lambda _: self._unloads.pop(old, None))

    async def _unload_later(self, name: str) -> None:
        await asyncio.sleep(self.unload_grace_s)
        if name in self.engine.adapters.names():
            await self.engine.unload_adapter(name)  # waits until no running request uses it
