"""/docs add|list|remove|sync-pins|sources: what Guru answers from on this server (Manage Server).

`/docs add url:` adds a website kept in sync, `/docs add channel:` a channel whose solved help
threads become documents; `/docs sources list|remove|resync` manages both kinds (and git
folders added from the CLI). The Sources cog (bot/cogs/sources.py) does their work.

Ingestion runs as a background job that edits the reply with its progress; the command
handler only checks, defers and starts it. Every read and write is scoped to the guild.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.access import ensure_can_read
from bot.checks import ensure_manage_guild
from bot.docsource import MessageRef, fetch_message, parse_message_refs, upload_document
from bot.errors import Refused, user_message_for
from bot.progress import BackgroundJobs, ProgressReply, post_pages
from core.pins import EDITED_KEY, ingest_message
from core.rag.types import IngestOutcome

if TYPE_CHECKING:
    from bot.client import GuruBot
    from bot.cogs.sources import Sources

log = logging.getLogger(__name__)

_MARKS = {"added": "✅ added", "replaced": "🔁 updated", "unchanged": "♻️ unchanged"}


def outcome_line(outcome: IngestOutcome) -> str:
    if outcome.status == "error":
        return f"⚠️ {outcome.uri}: {outcome.error}"
    return f"{_MARKS[outcome.status]}: {outcome.title} ({outcome.chunks} chunks)"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Docs(commands.GroupCog, group_name="docs", group_description="Guru's documents here"):
    """Add, list and remove the documents Guru answers from."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None
        self.bot = bot
        self.kb = bot.services.knowledge
        self.jobs = BackgroundJobs()

    async def cog_unload(self) -> None:
        await self.jobs.aclose()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        ensure_manage_guild(interaction, "manage Guru's documents")  # the default only hides
        return True

    sources = app_commands.Group(name="sources", description="Websites and channels kept in sync")

    @app_commands.command(
        name="add", description="Add a file, messages, a website or a help channel to Guru's docs"
    )
    @app_commands.describe(
        file="A .md, .txt, .html, .pdf or .docx file",
        messages="Message links or ids (in this channel), space-separated",
        url="A website (its start page or sitemap.xml) to crawl and keep in sync",
        every="With url or channel: re-sync on a schedule, e.g. 12h, 1d or 1w",
        channel="A channel or forum whose solved threads become documents (kept in sync)",
        since="With channel: only threads started since, e.g. 2026-01-31 or 90d",
        helper_role="With channel: whose ✅ on a reply accepts it (default: moderators)",
        solved_tag="With a forum: the tag that marks a post solved (default: Solved/Resolved)",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        messages: str | None = None,
        url: app_commands.Range[str, 1, 2000] | None = None,
        every: app_commands.Range[str, 1, 20] | None = None,
        channel: discord.TextChannel | discord.ForumChannel | None = None,
        since: app_commands.Range[str, 1, 20] | None = None,
        helper_role: discord.Role | None = None,
        solved_tag: app_commands.Range[str, 1, 20] | None = None,
    ) -> None:
        assert interaction.guild is not None and interaction.channel_id is not None
        if channel is not None or since or helper_role or solved_tag:
            if channel is None or url is not None or file is not None or messages:
                raise Refused(
                    "Give `channel` (and optionally `since`, `every`, `helper_role`, "
                    "`solved_tag`) without a file, messages or url."
                )
            await self._sources().start_add_channel(
                interaction,
                channel,
                since=since,
                every=every,
                helper_role=helper_role,
                solved_tag=solved_tag,
            )
            return
        if url is not None or every is not None:
            if url is None or file is not None or messages:
                raise Refused("Give `url` (and optionally `every`) without a file or messages.")
            await self._sources().start_add_url(interaction, url, every)
            return
        refs = parse_message_refs(messages or "", interaction.guild.id, interaction.channel_id)
        if file is None and not refs:
            raise Refused("Attach a file or give message links to add.")
        await interaction.response.defer(thinking=True, ephemeral=True)
        job = self._add(interaction, file, refs)
        self.jobs.start(interaction, job, f"docs-add-{interaction.id}")

    async def _add(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment | None,
        refs: list[MessageRef],
    ) -> None:
        assert interaction.guild is not None
        progress, lines = ProgressReply(interaction), []
        total = len(refs) + (file is not None)
        for i, item in enumerate(([file] if file else []) + refs, start=1):
            await progress.update(f"📥 Adding {i}/{total}…")
            try:
                if isinstance(item, discord.Attachment):
                    doc = await upload_document(item, self.kb.ingestor.limits)
                    outcome = await self.kb.ingestor.ingest_document(interaction.guild.id, doc)
                else:
                    ensure_can_read(
                        interaction, interaction.guild.get_channel_or_thread(item.channel_id)
                    )
                    msg = await fetch_message(interaction.guild, item, self.kb.ingestor.limits)
                    outcome = await ingest_message(self.kb.ingestor, msg, "message")
            except Exception as exc:  # noqa: BLE001 - one bad item never stops the rest
                if (known := user_message_for(exc)) is None:
                    raise
                name = item.filename if isinstance(item, discord.Attachment) else item.message_id
                outcome = IngestOutcome(str(name), "error", error=known)
            lines.append(outcome_line(outcome))
        await progress.update("\n".join(lines), final=True)

    def _sources(self) -> Sources:
        sources = self.bot.get_cog("Sources")
        if sources is None:
            raise Refused("Source syncing is not running right now; try again in a minute.")
        return sources  # type: ignore[return-value]

    @sources.command(name="list", description="Websites and channels kept in sync, last syncs")
    async def sources_list(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        sources = self._sources()
        await interaction.response.defer(thinking=True, ephemeral=True)
        lines = await sources.lines(interaction.guild_id)
        if not lines:
            await interaction.followup.send(
                "No sources yet: add one with `/docs add url:` or `/docs add channel:`."
            )
            return
        text = f"**{len(lines)} sources kept in sync**\n" + "\n".join(lines)
        await post_pages(
            interaction, render.pages(text, filename="sources.md", what="list"), ephemeral=True
        )

    @sources.command(name="remove", description="Stop syncing a source and remove its documents")
    @app_commands.describe(source="The source (start typing its id or address)")
    async def sources_remove(self, interaction: discord.Interaction, source: str) -> None:
        assert interaction.guild_id is not None
        sources = self._sources()
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.followup.send(await sources.remove(interaction.guild_id, source))

    @sources.command(name="resync", description="Sync a source now (only what changed)")
    @app_commands.describe(source="The source (start typing its id or address)")
    async def sources_resync(self, interaction: discord.Interaction, source: str) -> None:
        await self._sources().start_resync(interaction, source)

    @sources_remove.autocomplete("source")
    @sources_resync.autocomplete("source")
    async def _source_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        sources = self.bot.get_cog("Sources")
        if interaction.guild_id is None or sources is None:
            return []
        if not interaction.permissions.manage_guild:
            return []
        found = await sources.choices(interaction.guild_id, current)  # type: ignore[attr-defined]
        return [app_commands.Choice(name=label, value=key) for label, key in found]

    @app_commands.command(name="list", description="List Guru's documents on this server")
    async def list_docs(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        docs = await self.kb.ingestor.list_documents(interaction.guild_id)
        sources = self.bot.get_cog("Sources")
        synced = await sources.lines(interaction.guild_id) if sources else []  # type: ignore[attr-defined]
        if not docs and not synced:
            await interaction.followup.send("No documents yet: add some with `/docs add`.")
            return
        lines = [
            f"`{d.id}` {render.source_link(d.title, d.uri)} — {d.chunk_count} chunks"
            + (
                " — ✏️ edited since added; add it again to use the new text"
                if d.metadata.get(EDITED_KEY)
                else ""
            )
            for d in docs
        ]
        text = f"**{len(docs)} documents**\n" + "\n".join(lines)
        if synced:  # each source's last sync: what changed, or why it failed
            text += f"\n\n**{len(synced)} sources kept in sync**\n" + "\n".join(synced)
        # render.pages: up to 4 private messages, beyond that a preview and the list as a file
        await post_pages(
            interaction, render.pages(text, filename="documents.md", what="list"), ephemeral=True
        )

    @app_commands.command(name="scope", description="Who may read an uploaded document")
    @app_commands.describe(
        document="The document (start typing its title)",
        channel="Only members who can view this channel may read it",
        role="Only members with this role may read it",
    )
    async def scope(
        self,
        interaction: discord.Interaction,
        document: str,
        channel: discord.TextChannel | None = None,
        role: discord.Role | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        doc = await self.kb.scope(
            interaction.guild_id, document, channel and channel.id, role and role.id
        )
        who = [f"members who can view <#{channel.id}>"] if channel else []
        who += [f"members with <@&{role.id}>"] if role else []
        await interaction.followup.send(
            f"“{render.escape(doc.title)}” can now be read by {' and '.join(who) or 'everyone'}."
        )

    @app_commands.command(name="remove", description="Remove one of Guru's documents")
    @app_commands.describe(document="The document (start typing its title)")
    async def remove(self, interaction: discord.Interaction, document: str) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        doc = await self.kb.ingestor.remove(interaction.guild_id, document)
        await interaction.followup.send(
            render.escape(f"Removed “{doc.title}” ({doc.chunk_count} chunks).")
        )

    @scope.autocomplete("document")
    @remove.autocomplete("document")
    async def _document_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []
        docs = await self.kb.ingestor.list_documents(interaction.guild_id)
        wanted = current.lower()
        return [
            app_commands.Choice(name=render.truncate(d.title, 100), value=str(d.id))
            for d in docs
            if wanted in d.title.lower()
        ][:25]

    @app_commands.command(name="sync-pins", description="Add all pinned messages of a channel")
    @app_commands.describe(channel="The channel whose pins Guru should know")
    async def sync_pins(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        ensure_can_read(interaction, channel)
        await interaction.response.defer(thinking=True, ephemeral=True)
        pins = self.bot.get_cog("Pins")
        if pins is None:
            raise Refused("Pin syncing is not running right now; try again in a minute.")
        job = pins.sync(channel, ProgressReply(interaction))  # type: ignore[attr-defined]
        self.jobs.start(interaction, job, f"sync-pins-{interaction.id}")


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Docs(bot))
