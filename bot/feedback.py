"""👍/👎 under an answer, persisted with the interaction (the tuning data starts here).

Dynamic items: the button's custom_id carries the Discord interaction id, so buttons on old
answers keep working after a restart without any view being stored in memory. The rows they
rate are written by core (core.interactions.record_question, through core.answering for /ask
and /explain), before the answer starts.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot.errors import internal_error
from core.interactions import InteractionRepo

__all__ = ["FeedbackButton", "feedback_view"]

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
            text = internal_error(interaction.id)
        else:
            text = "Thanks, noted!" if saved else "Only the person who asked can rate this answer."
        await interaction.response.send_message(text, ephemeral=True)


def feedback_view(discord_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(discord_id, "up"))
    view.add_item(FeedbackButton(discord_id, "down"))
    return view
