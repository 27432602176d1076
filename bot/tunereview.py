"""/tune review: one 👍 answer at a time, with Approve / Reject / Skip / Done.

The buttons are dynamic items: each custom_id carries the action, the answer's row id and the
moderator who opened the review (`guru:review:approve:<id>:<moderator>`), so a review survives a
bot restart with no view kept in memory, and a click from anyone else is refused. Skip is a
cursor (the next pending answer after this id, oldest first), so skipping needs no state either.
Decisions go through core.tuning.review (audited, per guild) like `guru tune approve|reject`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot import render
from bot.errors import internal_error
from core.errors import GuruError
from core.tuning.review import ReviewCounts, ReviewItem, ReviewRepo

__all__ = ["ReviewButton", "review_message", "review_text", "closed_text"]

log = logging.getLogger(__name__)

ACTIONS = {
    "approve": ("Approve", discord.ButtonStyle.success, "✅"),
    "reject": ("Reject", discord.ButtonStyle.danger, "🗑️"),
    "skip": ("Skip", discord.ButtonStyle.secondary, None),
    "done": ("Done", discord.ButtonStyle.secondary, None),
}
QUESTION_CHARS = 500
NOT_YOURS = (
    "Only the moderator who opened this review can use its buttons; "
    "run `/tune review` to start your own."
)


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"guru:review:(?P<action>approve|reject|skip|done):(?P<id>[0-9]+):(?P<by>[0-9]+)",
):
    """One button of a review message; only its moderator's clicks count."""

    def __init__(self, action: str, item_id: int, moderator_id: int) -> None:
        label, style, emoji = ACTIONS[action]
        super().__init__(
            discord.ui.Button(
                label=label,
                style=style,
                emoji=emoji,
                custom_id=f"guru:review:{action}:{item_id}:{moderator_id}",
            )
        )
        self.action, self.item_id, self.moderator_id = action, item_id, moderator_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ReviewButton:
        return cls(match["action"], int(match["id"]), int(match["by"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        refusal = self._refusal(interaction)
        if refusal:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        assert interaction.guild_id is not None
        repo = ReviewRepo(interaction.client.services.db.pool)  # type: ignore[attr-defined]
        try:
            content, view = await self._next(repo, interaction.guild_id, interaction.user.id)
        except GuruError as exc:
            await interaction.response.send_message(exc.user_message, ephemeral=True)
            return
        except Exception:
            log.exception("review click %s failed (ref %s)", self.custom_id, interaction.id)
            await interaction.response.send_message(
                internal_error(interaction.id),
                ephemeral=True,
            )
            return
        await interaction.response.edit_message(content=content, view=view)

    def _refusal(self, interaction: discord.Interaction) -> str | None:
        if interaction.user.id != self.moderator_id:
            return NOT_YOURS
        services = getattr(interaction.client, "services", None)
        if services is None or services.db is None or interaction.guild_id is None:
            return "Reviewing isn't available here."
        if not interaction.permissions.manage_guild:  # it may have been taken away since
            return "You need the Manage Server permission to review answers for tuning."
        return None

    async def _next(
        self, repo: ReviewRepo, guild_id: int, moderator_id: int
    ) -> tuple[str, discord.ui.View | None]:
        note = ""
        if self.action in ("approve", "reject"):
            approve = self.action == "approve"
            try:
                (decision,) = await repo.decide(
                    guild_id, [self.item_id], approve, moderator_id, pending_only=True
                )
            except GuruError:  # the asker took the 👍 back meanwhile: nothing to decide
                note = f"ℹ️ Answer #{self.item_id} is no longer rated 👍; left out."
            else:
                if decision.before != "pending":
                    note = f"ℹ️ Answer #{self.item_id} was {decision.before} already; left as it is."
                else:
                    note = (
                        f"✅ Approved answer #{self.item_id}."
                        if approve
                        else f"🗑️ Rejected answer #{self.item_id}."
                    )
        counts = await repo.counts(guild_id)
        if self.action == "done":
            return closed_text(counts), None
        item = await repo.next_pending(guild_id, after=self.item_id)
        if item is None:
            return closed_text(counts, note, skipped=counts.pending > 0), None
        return review_message(item, counts, moderator_id, note)


def review_message(
    item: ReviewItem, counts: ReviewCounts, moderator_id: int, note: str = ""
) -> tuple[str, discord.ui.View]:
    """The text and buttons that show `item` to `moderator_id`."""
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(ReviewButton(action, item.id, moderator_id))
    return review_text(item, counts, note), view


def _counts(counts: ReviewCounts) -> str:
    return f"{counts.approved} approved, {counts.pending} pending"


def review_text(item: ReviewItem, counts: ReviewCounts, note: str = "") -> str:
    """One pending answer: who asked what where and when, the answer, the counts; ≤ 2000."""
    when = f"<t:{int(item.created_at.timestamp())}:R>"
    where = f" in <#{item.channel_id}>" if item.channel_id else ""
    head = [note] if note else []
    head.append(
        f"**Review for tuning** · answer #{item.id} · /{item.command} by "
        f"<@{item.user_id}>{where} · {when} · rated 👍 by the asker"
    )
    flat = " ".join(render.escape(item.question).split()).replace("```", "`\u200b``")
    question = render.truncate(flat, QUESTION_CHARS)  # one line, no code block to open
    head.append(f"**Question:** {question}")
    head.append("**Answer:**")
    foot = f"_{_counts(counts)} · Approve makes it a tuning example; Reject keeps it out for good._"
    room = render.MESSAGE_LIMIT - len("\n".join(head)) - len(foot) - 2
    answer = render.escape(item.answer.strip())
    if len(answer) > room:
        answer = render.truncate(answer, room - 4)
    if answer.count("```") % 2:  # a code block cut open would swallow the footer
        answer += "\n```"
    return "\n".join([*head, answer, foot])


def closed_text(counts: ReviewCounts, note: str = "", skipped: bool = False) -> str:
    """The review's last word: the counts, and how to go on."""
    lines = [note] if note else []
    if skipped:
        lines.append(
            "No more answers after the ones you skipped; run `/tune review` again to see those."
        )
    elif counts.pending:
        lines.append("Review closed; run `/tune review` again to go on.")
    else:
        lines.append("Nothing left to review: every 👍 answer here has been decided.")
    lines.append(
        f"{_counts(counts)}. `/tune start` (without a file) trains on the approved answers."
    )
    return "\n".join(lines)
