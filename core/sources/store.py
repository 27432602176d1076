"""`SourceRepo`: all SQL on `sources` and `source_pages` (migration 0011).

Every statement filters on `guild_id`, except `due`, which the scheduler uses to find work in
every guild (it returns whole rows; each sync then runs scoped to its row's guild).
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.db.pool import Pool
from core.sources.types import PageState, SourceInfo

__all__ = ["SourceRepo"]

_COLUMNS = (
    "id, guild_id, kind, location, options, every_s, next_sync_at, last_sync_at,"
    " last_summary, last_error, sync_started_at, sync_progress"
)
# A claim older than this belongs to a sync that died; another may take the source.
CLAIM_EXPIRY = "interval '1 hour'"


class SourceRepo:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def _rows(self, query: str, params: dict[str, Any]) -> list[SourceInfo]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return [SourceInfo(**r) for r in await cur.fetchall()]

    async def upsert(
        self,
        guild_id: int,
        kind: str,
        location: str,
        options: dict[str, Any],
        every_s: int | None,
    ) -> SourceInfo:
        """Add the source, or update the options and schedule of the one already there."""
        [row] = await self._rows(
            "INSERT INTO sources (guild_id, kind, location, options, every_s, next_sync_at)"
            " VALUES (%(g)s, %(kind)s, %(loc)s, %(options)s, %(every)s, now())"
            " ON CONFLICT (guild_id, kind, location) DO UPDATE SET options = EXCLUDED.options,"
            " every_s = EXCLUDED.every_s,"
            " next_sync_at = coalesce(sources.last_sync_at, now())"
            "   + make_interval(secs => coalesce(EXCLUDED.every_s, 0))"
            f" RETURNING {_COLUMNS}",
            {"g": guild_id, "kind": kind, "loc": location, "options": Jsonb(options),
             "every": every_s},
        )  # fmt: skip
        return row

    async def list(self, guild_id: int) -> list[SourceInfo]:
        return await self._rows(
            f"SELECT {_COLUMNS} FROM sources WHERE guild_id = %(g)s ORDER BY id", {"g": guild_id}
        )

    async def find(self, guild_id: int, id_or_location: str) -> SourceInfo | None:
        found = await self._rows(
            f"SELECT {_COLUMNS} FROM sources WHERE guild_id = %(g)s"
            " AND (location = %(key)s OR id::text = %(key)s) ORDER BY id LIMIT 1",
            {"g": guild_id, "key": id_or_location.strip()},
        )
        return found[0] if found else None

    async def due(self, kinds: list[str], limit: int = 10) -> list[SourceInfo]:
        """Scheduled sources of any guild whose time has come and that nobody is syncing,
        of the `kinds` this process can read (Discord channels only from the bot)."""
        return await self._rows(
            f"SELECT {_COLUMNS} FROM sources WHERE every_s IS NOT NULL"
            " AND next_sync_at <= now() AND kind = ANY(%(kinds)s)"
            f" AND (sync_started_at IS NULL OR sync_started_at < now() - {CLAIM_EXPIRY})"
            " ORDER BY next_sync_at LIMIT %(limit)s",
            {"limit": limit, "kinds": kinds},
        )

    async def claim(self, guild_id: int, source_id: int) -> bool:
        """Mark the source as syncing; False when another sync holds a live claim."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE sources SET sync_started_at = now()"
                " WHERE guild_id = %(g)s AND id = %(id)s AND (sync_started_at IS NULL"
                f"  OR sync_started_at < now() - {CLAIM_EXPIRY})",
                {"g": guild_id, "id": source_id},
            )
            return cur.rowcount == 1

    async def finish(
        self, guild_id: int, source_id: int, summary: dict[str, Any] | None, error: str | None
    ) -> None:
        """Record the outcome, release the claim and schedule the next sync."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE sources SET sync_started_at = NULL, sync_progress = NULL,"
                " last_sync_at = now(),"
                " last_summary = coalesce(%(summary)s, last_summary), last_error = %(error)s,"
                " next_sync_at = CASE WHEN every_s IS NULL THEN NULL"
                "   ELSE now() + make_interval(secs => every_s) END"
                " WHERE guild_id = %(g)s AND id = %(id)s",
                {"g": guild_id, "id": source_id, "error": error,
                 "summary": Jsonb(summary) if summary is not None else None},
            )  # fmt: skip

    async def progress(self, guild_id: int, source_id: int, summary: dict[str, Any]) -> None:
        """Record the running sync's counts so far."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE sources SET sync_progress = %(p)s WHERE guild_id = %(g)s AND id = %(id)s",
                {"g": guild_id, "id": source_id, "p": Jsonb(summary)},
            )

    async def delete(self, guild_id: int, source_id: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM sources WHERE guild_id = %(g)s AND id = %(id)s",
                {"g": guild_id, "id": source_id},
            )

    async def pages(self, guild_id: int, source_id: int) -> dict[str, PageState]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT uri, etag, last_modified, content_hash, links FROM source_pages"
                " WHERE guild_id = %(g)s AND source_id = %(id)s",
                {"g": guild_id, "id": source_id},
            )
            rows = await cur.fetchall()
        return {r[0]: PageState(r[0], r[1], r[2], r[3], tuple(r[4] or ())) for r in rows}

    async def save_page(self, guild_id: int, source_id: int, page: PageState) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO source_pages"
                " (guild_id, source_id, uri, etag, last_modified, content_hash, links)"
                " VALUES (%(g)s, %(id)s, %(uri)s, %(etag)s, %(lm)s, %(hash)s, %(links)s)"
                " ON CONFLICT (source_id, uri) DO UPDATE SET etag = EXCLUDED.etag,"
                " last_modified = EXCLUDED.last_modified, content_hash = EXCLUDED.content_hash,"
                " links = EXCLUDED.links, synced_at = now()",
                {"g": guild_id, "id": source_id, "uri": page.uri, "etag": page.etag,
                 "lm": page.last_modified, "hash": page.content_hash, "links": list(page.links)},
            )  # fmt: skip

    async def forget_page(self, guild_id: int, source_id: int, uri: str) -> bool:
        """Drop the page's row; True when no other source of the guild lists the same uri
        (so its document may go too)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM source_pages WHERE guild_id = %(g)s AND source_id = %(id)s"
                " AND uri = %(uri)s",
                {"g": guild_id, "id": source_id, "uri": uri},
            )
            cur = await conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM source_pages"
                " WHERE guild_id = %(g)s AND uri = %(uri)s)",
                {"g": guild_id, "uri": uri},
            )
            row = await cur.fetchone()
        return bool(row and row[0])
