"""Per-guild settings: the `guild_settings` table behind `/settings`, and its audit trail.

The repository owns the SQL; every method takes `guild_id` so one server can never read or
change another's settings. A missing row means "all defaults" (NULL = the process default from
`Settings`, empty id lists = no restriction), so reading never has to create anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Any

from psycopg import sql

from core.db.audit import record_action
from core.db.pool import Pool
from core.errors import InvalidInput

__all__ = [
    "CONSOLE_GUILD_ID",
    "ChannelPersona",
    "GuildSettings",
    "GuildSettingsRepo",
    "record_guild",
]

log = logging.getLogger(__name__)

# The offline console's own server (`guru chat`; `guru ingest PATH --guild 1` feeds its /ask).
# Discord snowflakes carry a timestamp, so no real guild id is this small; 0 is Guru's own
# concept notes (core.rag.types.CONCEPTS_GUILD_ID).
CONSOLE_GUILD_ID = 1

SCALARS = (
    "system_prompt",
    "temperature",
    "max_answer_tokens",
    "rate_limit_per_minute",
    "ask_in_thread",
)
ID_LISTS = ("allowed_channel_ids", "allowed_role_ids")

_SELECT = """
SELECT system_prompt, temperature, max_answer_tokens, allowed_channel_ids, allowed_role_ids,
       rate_limit_per_minute, ask_in_thread
FROM guild_settings WHERE guild_id = %(guild_id)s
"""
_UPSERT_GUILD = """
INSERT INTO guilds (id, name) VALUES (%(guild_id)s, %(name)s)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name WHERE guilds.name <> EXCLUDED.name
"""
_ENSURE_SETTINGS = (
    "INSERT INTO guild_settings (guild_id) VALUES (%(guild_id)s) ON CONFLICT DO NOTHING"
)
_RESET = "DELETE FROM guild_settings WHERE guild_id = %(guild_id)s"
_PERSONA = """
SELECT system_prompt, max_answer_tokens FROM channel_personas
WHERE guild_id = %(guild_id)s AND channel_id = %(channel_id)s
"""
_SET_PERSONA = """
INSERT INTO channel_personas (guild_id, channel_id, system_prompt, max_answer_tokens)
VALUES (%(guild_id)s, %(channel_id)s, %(system_prompt)s, %(max_answer_tokens)s)
ON CONFLICT (guild_id, channel_id) DO UPDATE
SET system_prompt = EXCLUDED.system_prompt, max_answer_tokens = EXCLUDED.max_answer_tokens,
    updated_at = now()
"""
_CLEAR_PERSONA = (
    "DELETE FROM channel_personas WHERE guild_id = %(guild_id)s AND channel_id = %(channel_id)s"
)


@dataclass(frozen=True)
class GuildSettings:
    """One guild's overrides; None = use the process default."""

    guild_id: int
    system_prompt: str | None = None
    temperature: float | None = None
    max_answer_tokens: int | None = None
    allowed_channel_ids: tuple[int, ...] = ()
    allowed_role_ids: tuple[int, ...] = ()
    rate_limit_per_minute: int | None = None
    ask_in_thread: bool = False  # /ask opens a thread for its answer (migration 0014)

    def channel_allowed(self, channel_id: int | None) -> bool:
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids

    def roles_allowed(self, role_ids: set[int]) -> bool:
        return not self.allowed_role_ids or bool(role_ids & set(self.allowed_role_ids))


@dataclass(frozen=True)
class ChannelPersona:
    """One channel's own system prompt and answer length (None: the server's)."""

    channel_id: int
    system_prompt: str | None = None
    max_answer_tokens: int | None = None

    def over(self, prefs: GuildSettings) -> GuildSettings:
        """The server's settings with this channel's on top."""
        return replace(
            prefs,
            system_prompt=self.system_prompt or prefs.system_prompt,
            max_answer_tokens=self.max_answer_tokens or prefs.max_answer_tokens,
        )


async def record_guild(conn: Any, guild_id: int, name: str) -> None:
    """The guild's row, its name kept current (Discord allows 100 characters), inside the
    caller's transaction: settings rows reference it."""
    await conn.execute(_UPSERT_GUILD, {"guild_id": guild_id, "name": name[:100]})


class GuildSettingsRepo:
    """Reads and writes `guild_settings`; each change is audited in the same transaction."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def get(self, guild_id: int) -> GuildSettings:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_SELECT, {"guild_id": guild_id})
            row = await cur.fetchone()
        if row is None:
            return GuildSettings(guild_id)
        names = [f.name for f in fields(GuildSettings)][1:]
        values = dict(zip(names, row))
        for name in ID_LISTS:
            values[name] = tuple(values[name] or ())
        return GuildSettings(guild_id, **values)

    async def set(
        self, guild_id: int, *, actor_id: int | None, guild_name: str = "", **changes: Any
    ) -> GuildSettings:
        """Set scalar columns (None = back to the default); returns the new settings."""
        unknown = set(changes) - set(SCALARS)
        if unknown or not changes:
            raise InvalidInput(f"Unknown setting(s): {', '.join(sorted(unknown)) or 'none given'}.")
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
            for name in changes
        )
        query = sql.SQL("UPDATE guild_settings SET {} WHERE guild_id = %(guild_id)s").format(
            assignments
        )
        await self._write(
            guild_id,
            actor_id,
            guild_name,
            "settings.set",
            changes,
            query,
            {**changes, "guild_id": guild_id},
        )
        return await self.get(guild_id)

    async def allow(
        self,
        guild_id: int,
        column: str,
        item_id: int,
        allowed: bool,
        *,
        actor_id: int | None,
        guild_name: str = "",
    ) -> GuildSettings:
        """Add or remove one channel/role id from an allow-list column."""
        if column not in ID_LISTS:
            raise InvalidInput(f"Unknown list setting {column!r}.")
        template = (
            "UPDATE guild_settings"
            " SET {col} = array_append(array_remove({col}, %(item)s), %(item)s)"
            if allowed
            else "UPDATE guild_settings SET {col} = array_remove({col}, %(item)s)"
        )
        query = sql.SQL(template + " WHERE guild_id = %(guild_id)s").format(
            col=sql.Identifier(column)
        )
        detail = {"column": column, "id": item_id, "allowed": allowed}
        await self._write(
            guild_id,
            actor_id,
            guild_name,
            "settings.allow",
            detail,
            query,
            {"item": item_id, "guild_id": guild_id},
        )
        return await self.get(guild_id)

    async def reset(self, guild_id: int, *, actor_id: int | None) -> GuildSettings:
        """Back to all defaults (the row is deleted; reading it again yields defaults)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_RESET, {"guild_id": guild_id})
            await record_action(conn, guild_id, actor_id, "settings.reset", {})
        return GuildSettings(guild_id)

    async def persona(self, guild_id: int, channel_id: int) -> ChannelPersona | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_PERSONA, {"guild_id": guild_id, "channel_id": channel_id})
            row = await cur.fetchone()
        return ChannelPersona(channel_id, *row) if row is not None else None

    async def set_persona(
        self, guild_id: int, persona: ChannelPersona, *, actor_id: int | None, guild_name: str = ""
    ) -> None:
        """Set (or, with neither value, clear) a channel's persona; audited like the rest."""
        clear = persona.system_prompt is None and persona.max_answer_tokens is None
        detail = {
            "channel_id": persona.channel_id,
            "system_prompt": persona.system_prompt,
            "max_answer_tokens": persona.max_answer_tokens,
        }
        params = {"guild_id": guild_id, **detail}
        query = sql.SQL(_CLEAR_PERSONA if clear else _SET_PERSONA)
        action = "settings.persona.clear" if clear else "settings.persona"
        await self._write(guild_id, actor_id, guild_name, action, detail, query, params)

    async def _write(
        self,
        guild_id: int,
        actor_id: int | None,
        guild_name: str,
        action: str,
        detail: dict[str, Any],
        query: sql.Composable,
        params: dict[str, Any],
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await record_guild(conn, guild_id, guild_name)
            await conn.execute(_ENSURE_SETTINGS, {"guild_id": guild_id})
            await conn.execute(query, params)
            await record_action(conn, guild_id, actor_id, action, detail)
        log.info("guild %s: %s by %s", guild_id, action, actor_id)
