"""/tune start|status|list|activate|rollback|review|cancel: this server's LoRA adapters
(Manage Server).

`start` only validates and queues (core.tuning.tuner, as `guru tune start`); the training runs
in the trainer process (`guru tune worker`), and this cog follows the job's row to keep the
reply current until it ends or Discord's 15-minute reply window does. `activate`/`rollback`
notify every running bot, this one included, which then hot-swaps the adapter. `review` shows
the 👍 answers waiting for a moderator's approval one at a time (bot.tunereview); approved ones
are what `start` without a file trains on.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import tunereport as report
from bot.checks import ensure_manage_guild
from bot.errors import Refused
from bot.progress import BackgroundJobs, ProgressReply
from bot.streaming import REPLY_WINDOW_S
from bot.tunereview import ReviewButton, closed_text, review_message
from core.tuning.jobs import JobRepo
from core.tuning.registry import AdapterRepo
from core.tuning.review import ReviewRepo
from core.tuning.tuner import (
    MAX_UPLOAD_BYTES,
    QueuedJob,
    cancel_job,
    ensure_no_live_job,
    job_spec,
    loss_curve_png,
    queue_job,
)

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

POLL_S = 5.0  # one indexed read of the job row; the worker's heartbeat is 5 s too


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Tune(commands.GroupCog, group_name="tune", group_description="Tune Guru for this server"):
    """Train, list and switch this server's LoRA adapters."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        self.model = bot.settings.model
        self.job_repo = JobRepo(bot.services.db.pool)
        self.adapters = AdapterRepo(bot.services.db.pool)
        self.reviews = ReviewRepo(bot.services.db.pool)
        self.jobs = BackgroundJobs()
        self.poll_s, self.window_s = POLL_S, REPLY_WINDOW_S  # tests shorten both

    async def cog_load(self) -> None:
        # Review buttons keep working across restarts (their custom_id carries their state).
        self.bot.add_dynamic_items(ReviewButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ReviewButton)
        await self.jobs.aclose()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        ensure_manage_guild(interaction, "tune Guru for this server")  # the default only hides
        return True

    @app_commands.command(name="start", description="Train a new adapter for this server")
    @app_commands.describe(
        data="JSONL examples (default: this server's approved 👍 answers)",
        qlora="Train on a 4-bit base (QLoRA): less memory, a bit slower",
        epochs="Passes over the data (default 3)",
    )
    async def start(
        self,
        interaction: discord.Interaction,
        data: discord.Attachment | None = None,
        qlora: bool = False,
        epochs: app_commands.Range[int, 1, 20] | None = None,
    ) -> None:
        assert interaction.guild_id is not None and self.bot.services is not None
        if data is not None and data.size > MAX_UPLOAD_BYTES:
            raise Refused(f"{data.filename} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB.")
        # fair use, before the defer so refusals stay private: one live job per server, then
        # the hourly budget of starts (only a job really queued counts against it)
        fair_use = self.bot.services.fair_use
        await ensure_no_live_job(self.job_repo.pool, interaction.guild_id)
        fair_use.may_start_tuning(interaction.guild_id)
        started = asyncio.get_running_loop().time()
        await interaction.response.defer(thinking=True, ephemeral=True)
        spec = job_spec(self.model, qlora, epochs=epochs)
        raw = await data.read() if data is not None else None
        queued = await queue_job(
            self.job_repo.pool,
            interaction.guild_id,
            spec,
            data=raw,
            source=data.filename if data else "the file",
            requested_by=interaction.user.id,
        )
        fair_use.tuning_started(interaction.guild_id)
        reply = ProgressReply(interaction)
        await reply.update(report.queued_text(queued))
        self.jobs.start(interaction, self._follow(reply, queued, started), f"tune-{queued.id}")

    async def _follow(self, reply: ProgressReply, queued: QueuedJob, started: float) -> None:
        """Edit the reply from the job's row until the job ends or the reply window does."""
        loop, eta = asyncio.get_running_loop(), report.Eta()
        deadline = started + self.window_s
        while True:
            job = await self.job_repo.get(queued.guild_id, queued.id)
            if job.status in report.FINISHED:
                break
            if loop.time() >= deadline:
                await reply.update(report.still_running_text(job.id), final=True)
                return
            frame = report.progress_text(queued, job, eta.update(loop.time(), job.progress))
            await reply.update(frame)
            await asyncio.sleep(max(0.0, min(self.poll_s, deadline - loop.time())))
        adapter = None
        if job.status == "done" and job.adapter_version is not None:
            adapter = await self.adapters.get(job.guild_id, job.adapter_version)
        png = await asyncio.to_thread(loss_curve_png, adapter) if adapter else None
        files = [discord.File(io.BytesIO(png), filename="loss.png")] if png else []
        await reply.update(report.finished_text(job, adapter), final=True, attachments=files)
        log.info("tune job %d followed to its end (%s)", job.id, job.status)

    @app_commands.command(name="status", description="This server's recent tuning jobs")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        jobs = await self.job_repo.for_guild(interaction.guild_id, limit=10)
        await interaction.followup.send(report.jobs_text(jobs))

    @app_commands.command(name="list", description="This server's adapter versions")
    async def list_versions(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.followup.send(
            report.adapters_text(await self.adapters.list(interaction.guild_id), self.model)
        )

    @app_commands.command(name="activate", description="Serve an adapter version here")
    @app_commands.describe(version="The version (start typing; see /tune list)")
    async def activate(
        self, interaction: discord.Interaction, version: app_commands.Range[int, 1]
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        adapter = await self.adapters.activate(
            interaction.guild_id, version, actor_id=interaction.user.id, serving=self.model
        )
        await interaction.followup.send(
            f"✅ This server now uses adapter v{adapter.version}; "
            "answers switch over within seconds."
        )

    @activate.autocomplete("version")
    async def _version_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []
        listed = await self.adapters.list(interaction.guild_id)
        typed = str(current).strip().lstrip("vV")
        return [
            app_commands.Choice(name=report.version_choice_name(a, self.model), value=a.version)
            for a in reversed(listed)
            if str(a.version).startswith(typed)
        ][:25]

    @app_commands.command(name="rollback", description="Back to the previous adapter version")
    async def rollback(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        adapter = await self.adapters.rollback(interaction.guild_id, actor_id=interaction.user.id)
        now = f"adapter v{adapter.version}" if adapter else "the base model"
        await interaction.followup.send(f"↩️ Rolled back: this server now uses {now}.")

    @app_commands.command(name="review", description="Approve 👍 answers as tuning examples")
    async def review(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        item = await self.reviews.next_pending(interaction.guild_id)
        counts = await self.reviews.counts(interaction.guild_id)
        if item is None:
            await interaction.followup.send(closed_text(counts))
            return
        content, view = review_message(item, counts, interaction.user.id)
        await interaction.followup.send(content, view=view)

    @app_commands.command(name="cancel", description="Stop a queued or running tuning job")
    @app_commands.describe(job="The job (start typing; see /tune status)")
    async def cancel(
        self, interaction: discord.Interaction, job: app_commands.Range[int, 1]
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True, ephemeral=True)
        was = await cancel_job(
            self.job_repo.pool, interaction.guild_id, job, actor_id=interaction.user.id
        )
        await interaction.followup.send(
            f"⏹️ Cancelled tuning job {was.id} (it was {was.status}); "
            "the active adapter is unchanged."
        )

    @cancel.autocomplete("job")
    async def _job_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []
        typed = str(current).strip().lstrip("#")
        return [
            app_commands.Choice(name=report.job_choice_name(j), value=j.id)
            for j in await self.job_repo.live(interaction.guild_id)
            if str(j.id).startswith(typed)
        ][:25]


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Tune(bot))
