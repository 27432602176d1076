"""👍/👎 under an answer, persisted with the interaction (the tuning data starts here).

Dynamic items: the button's custom_id carries the Discord interaction id, so buttons on old
answers keep working after a restart without any view being stored in memory. `record_answer`
is how /ask, /calc and /explain store what they answered, so every rated answer has its row.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from core.db.pool import Pool
from core.interactions import AnswerRecord, InteractionRepo

__all__ = ["FeedbackButton", "RecordedAnswer", "feedback_view", "record_answer"]

log = logging.getLogger(__name__)

VALUES = {"up": 1, "down": -1}


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"guru:fb:(?P<id>[0-9]+):(?P<value>up|down)",
):
    """One rating button; only the asker's click counts."""

    def __init__(self, discord_id: int, value: str) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="👍" if value == "up" else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"guru:fb:{discord_id}:{value}",
            )
        )
        self.discord_id, self.value = discord_id, value

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> FeedbackButton:
        return cls(int(match["id"]), match["value"])

    async def callback(self, interaction: discord.Interaction) -> None:
        services = getattr(interaction.client, "services", None)
        if services is None or services.db is None or interaction.guild_id is None:
            await interaction.response.send_message(
                "Feedback isn't available here.", ephemeral=True
            )
            return
        try:
            saved = await InteractionRepo(services.db.pool).set_feedback(
                interaction.guild_id, self.discord_id, interaction.user.id, VALUES[self.value]
            )
        except Exception:
            log.exception("feedback on %s failed (ref %s)", self.discord_id, interaction.id)
            text = f"Something went wrong on our side; it's been logged (ref {interaction.id})."
        else:
            text = "Thanks, noted!" if saved else "Only the person who asked can rate this answer."
        await interaction.response.send_message(text, ephemeral=True)


def feedback_view(discord_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(discord_id, "up"))
    view.add_item(FeedbackButton(discord_id, "down"))
    return view


@dataclass(frozen=True)
class RecordedAnswer:
    """A question stored when its answer started; `finish` adds the answer shown."""

    repo: InteractionRepo
    guild_id: int
    discord_id: int
    started: float

    async def finish(self, text: str, ending: str) -> None:
        elapsed_ms = int((asyncio.get_running_loop().time() - self.started) * 1000)
        await self.repo.finish(self.guild_id, self.discord_id, text, ending, elapsed_ms)


async def record_answer(
    pool: Pool,
    interaction: discord.Interaction,
    command: str,
    question: str,
    sources: Sequence[dict[str, Any]] = (),
    started: float | None = None,
) -> RecordedAnswer | None:
    """Store the question before answering, so a 👍 on the final message always finds its row;
    None outside a server (rows are per guild). `started`: loop time the latency counts from."""
    if interaction.guild_id is None:
        return None
    if started is None:
        started = asyncio.get_running_loop().time()
    repo = InteractionRepo(pool)
    await repo.record(
        AnswerRecord(
            guild_id=interaction.guild_id,
            discord_id=interaction.id,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id,
            command=command,
            question=question,
            answer="",
            sources=list(sources),
        )
    )
    return RecordedAnswer(repo, interaction.guild_id, interaction.id, started)
