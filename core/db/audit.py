"""The audit log: who changed what in a guild (settings, adapters, tuning, help channels).

One writer for every module that records an action, inside the caller's transaction so the
change and its audit row land together or not at all.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

__all__ = ["record_action"]

_INSERT = """
INSERT INTO audit_log (guild_id, actor_id, action, detail)
VALUES (%(guild_id)s, %(actor_id)s, %(action)s, %(detail)s)
"""


async def record_action(
    conn: AsyncConnection[Any],
    guild_id: int,
    actor_id: int | None,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row on `conn` (the caller's transaction)."""
    await conn.execute(
        _INSERT,
        {
            "guild_id": guild_id,
            "actor_id": actor_id,
            "action": action,
            "detail": Jsonb(detail or {}),
        },
    )
