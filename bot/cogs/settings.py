"""/settings: per-server configuration for server managers (stored in Postgres)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import ensure_manage_guild
from bot.errors import Refused
from bot.helpdesk import missing_thread_permissions
from core.answering import ANSWER_TEMPERATURE, ANSWER_TOKENS
from core.fairuse import FairUse
from core.guilds import ChannelPersona, GuildSettings, GuildSettingsRepo
from core.helpdesk import HelpChannel, HelpChannels

if TYPE_CHECKING:
    from bot.client import GuruBot


def settings_embed(
    prefs: GuildSettings,
    default_temperature: float,
    default_tokens: int,
    fair_use: FairUse,
    help_channels: Sequence[HelpChannel] = (),
) -> discord.Embed:
    embed = discord.Embed(title="Guru settings for this server", colour=discord.Colour.blurple())
    channels = " ".join(f"<#{c}>" for c in prefs.allowed_channel_ids) or "all channels"
    roles = " ".join(f"<@&{r}>" for r in prefs.allowed_role_ids) or "everyone"
    prompt = prefs.system_prompt or "(default)"
    temperature = prefs.temperature if prefs.temperature is not None else default_temperature
    tokens = prefs.max_answer_tokens or default_tokens
    per_user = fair_use.user_limit(prefs.rate_limit_per_minute)
    rate = f"{per_user} per person per minute" if per_user else "off"
    if prefs.rate_limit_per_minute is None:
        rate += " (this host's default)"
    server = f"{fair_use.guild_cap} per minute (set by the host)" if fair_use.guild_cap else "off"
    embed.add_field(name="Channels", value=channels, inline=False)
    embed.add_field(name="Roles allowed to ask", value=roles, inline=False)
    embed.add_field(name="System prompt", value=render.escape(prompt), inline=False)
    embed.add_field(name="Temperature", value=f"{temperature:g}")
    embed.add_field(name="Answer length", value=f"{tokens} tokens")
    embed.add_field(name="Rate limit", value=rate)
    embed.add_field(name="Whole server", value=server)
    embed.add_field(name="/ask answers in a thread", value="yes" if prefs.ask_in_thread else "no")
    helps = "\n".join(_describe_help(h) for h in help_channels) or "none"
    embed.add_field(name="Help channels", value=helps, inline=False)
    return render.clamp_embed(embed)


def _describe_help(channel: HelpChannel) -> str:
    role = f"pings <@&{channel.helper_role_id}>" if channel.helper_role_id else "no helper role"
    quiet = "says so" if channel.say_when_unanswered else "stays silent"
    return f"<#{channel.channel_id}>: {role}; when the docs have nothing it {quiet}"


UNANSWERED = {"stay silent": False, "say so": True}
NO_INTENT = (
    "Help channels can't work without the Message Content intent: Guru would see every post"
    " as empty. Turn it on in the Discord developer portal (your app → Bot → Privileged"
    " Gateway Intents → Message Content) and restart Guru, then try again."
)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class GuildSettingsCog(
    commands.GroupCog, group_name="settings", group_description="Configure Guru for this server"
):
    """Server settings (Manage Server). Hidden by default permissions and re-checked here."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        self.repo = GuildSettingsRepo(bot.services.db.pool)
        self.help_channels = HelpChannels(bot.services.db.pool)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        ensure_manage_guild(interaction)
        return True

    async def _reply(
        self, interaction: discord.Interaction, prefs: GuildSettings, done: str = ""
    ) -> None:
        # the defaults the answering path really uses when the guild sets none
        assert self.bot.services is not None
        helps = await self.help_channels.of_guild(prefs.guild_id)
        embed = settings_embed(
            prefs, ANSWER_TEMPERATURE, ANSWER_TOKENS, self.bot.services.fair_use, helps
        )
        await interaction.followup.send(done or None, embed=embed, ephemeral=True)

    async def _set(self, interaction: discord.Interaction, done: str, **changes: Any) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild is not None
        prefs = await self.repo.set(
            interaction.guild.id,
            actor_id=interaction.user.id,
            guild_name=interaction.guild.name,
            **changes,
        )
        await self._reply(interaction, prefs, done)

    @app_commands.command(name="show", description="Show this server's Guru settings")
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await self._reply(interaction, await self.repo.get(interaction.guild_id or 0))

    @app_commands.command(name="channel", description="Allow or disallow Guru in a channel")
    @app_commands.describe(channel="The channel", allowed="Answer there? (no list = everywhere)")
    async def channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool
    ) -> None:
        await self._allow(interaction, "allowed_channel_ids", channel.id, allowed)

    @app_commands.command(name="role", description="Allow or disallow a role to ask Guru")
    @app_commands.describe(role="The role", allowed="May it ask? (no list = everyone may)")
    async def role(
        self, interaction: discord.Interaction, role: discord.Role, allowed: bool
    ) -> None:
        await self._allow(interaction, "allowed_role_ids", role.id, allowed)

    async def _allow(
        self, interaction: discord.Interaction, column: str, item: int, allowed: bool
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild is not None
        prefs = await self.repo.allow(
            interaction.guild.id,
            column,
            item,
            allowed,
            actor_id=interaction.user.id,
            guild_name=interaction.guild.name,
        )
        await self._reply(interaction, prefs, "Saved.")

    @app_commands.command(name="system-prompt", description="Set the instructions Guru follows")
    @app_commands.describe(text="New system prompt; leave empty for the default")
    async def system_prompt(
        self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 4000] | None = None
    ) -> None:
        await self._set(interaction, "Saved.", system_prompt=text)

    @app_commands.command(name="temperature", description="Set how adventurous answers are")
    @app_commands.describe(value="0 = always the likeliest words, up to 2; empty = default")
    async def temperature(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[float, 0.0, 2.0] | None = None,
    ) -> None:
        await self._set(interaction, "Saved.", temperature=value)

    @app_commands.command(name="answer-length", description="Set the longest answer, in tokens")
    @app_commands.describe(tokens="16 to 4096; empty = default")
    async def answer_length(
        self,
        interaction: discord.Interaction,
        tokens: app_commands.Range[int, 16, 4096] | None = None,
    ) -> None:
        await self._set(interaction, "Saved.", max_answer_tokens=tokens)

    @app_commands.command(
        name="rate-limit", description="Limit /ask, /explain and /calc per person per minute"
    )
    @app_commands.describe(per_minute="1 up to this host's limit; 0 = the host's default")
    async def rate_limit(
        self, interaction: discord.Interaction, per_minute: app_commands.Range[int, 0, 600]
    ) -> None:
        assert self.bot.services is not None
        self.bot.services.fair_use.check_override(per_minute)  # refused privately, unsaved
        await self._set(interaction, "Saved.", rate_limit_per_minute=per_minute or None)

    @app_commands.command(name="persona", description="A channel's own prompt and answer length")
    @app_commands.describe(
        channel="The channel (its threads follow it)",
        text="Its system prompt; leave both empty to use the server's settings there again",
        tokens="Its longest answer, 16 to 4096",
    )
    async def persona(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        text: app_commands.Range[str, 1, 4000] | None = None,
        tokens: app_commands.Range[int, 16, 4096] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild is not None
        await self.repo.set_persona(
            interaction.guild.id,
            ChannelPersona(channel.id, text, tokens),
            actor_id=interaction.user.id,
            guild_name=interaction.guild.name,
        )
        if text is None and tokens is None:
            done = f"<#{channel.id}> uses the server's settings again."
        else:
            parts = [f"prompt “{render.truncate(text, 200)}”"] if text else []
            parts += [f"answers up to {tokens} tokens"] if tokens else []
            done = f"In <#{channel.id}> and its threads: {', '.join(parts)}."
        await interaction.followup.send(render.escape(done), ephemeral=True)

    @app_commands.command(name="ask-thread", description="Open a thread for each /ask answer")
    @app_commands.describe(enabled="Answer /ask in a thread named after the question?")
    async def ask_thread(self, interaction: discord.Interaction, enabled: bool) -> None:
        done = "Saved: /ask answers open a thread." if enabled else "Saved: /ask answers in place."
        guild = interaction.guild
        if enabled and guild is not None and not guild.me.guild_permissions.create_public_threads:
            done += " Note: I lack Create Public Threads, so I'll answer in place until I have it."
        await self._set(interaction, done, ask_in_thread=enabled)

    @app_commands.command(
        name="help-channel", description="Answer every new post in a channel or forum, in a thread"
    )
    @app_commands.describe(
        channel="A text channel or a forum",
        enabled="Answer there? False stops it",
        helper_role="The role “Still need help?” pings; Guru stays out once one of them replies",
        when_unanswered="When nothing in the docs fits: post nothing, or say so",
    )
    async def help_channel(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.ForumChannel,
        enabled: bool = True,
        helper_role: discord.Role | None = None,
        when_unanswered: Literal["stay silent", "say so"] = "stay silent",
    ) -> None:
        guild = interaction.guild
        assert guild is not None
        if not enabled:
            await interaction.response.defer(ephemeral=True)
            cleared = await self.help_channels.clear(
                guild.id, channel.id, actor_id=interaction.user.id, guild_name=guild.name
            )
            done = "is no longer a help channel." if cleared else "wasn't a help channel."
            await interaction.followup.send(f"<#{channel.id}> {done}", ephemeral=True)
            return
        # checked before anything is saved: a help channel that can't work is refused
        if not self.bot.intents.message_content:
            raise Refused(NO_INTENT)
        if missing := missing_thread_permissions(channel, guild.me):
            raise Refused(
                f"I can't answer in <#{channel.id}>: I need {', '.join(missing)} there. Grant"
                " them (channel settings → Permissions → Guru's role) and try again."
            )
        if helper_role is not None and helper_role.is_default():
            raise Refused("@everyone can't be the helper role; pick the role your helpers have.")
        await interaction.response.defer(ephemeral=True)
        role_id = helper_role.id if helper_role is not None else None
        await self.help_channels.set(
            guild.id,
            HelpChannel(channel.id, role_id, UNANSWERED[when_unanswered]),
            actor_id=interaction.user.id,
            guild_name=guild.name,
        )
        where = "post" if isinstance(channel, discord.ForumChannel) else "message"
        lines = [f"Every new {where} in <#{channel.id}> gets an answer in a thread."]
        if helper_role is not None:
            lines.append(f"“Still need help?” pings <@&{role_id}>.")
            if not helper_role.mentionable and not guild.me.guild_permissions.mention_everyone:
                lines.append(
                    "Note: that role isn't mentionable and I lack Mention @everyone, so the"
                    " ping won't notify anyone; make the role mentionable."
                )
        lines.append(
            "When nothing in the docs fits I "
            + ("say so." if UNANSWERED[when_unanswered] else "post nothing.")
        )
        prefs = await self.repo.get(guild.id)
        if not prefs.channel_allowed(channel.id):
            lines.append(
                f"Note: <#{channel.id}> isn't among the channels Guru answers in, so members'"
                f" posts there are refused; add it with `/settings channel`."
            )
        await interaction.followup.send(" ".join(lines), ephemeral=True)

    @app_commands.command(name="reset", description="Back to the defaults")
    async def reset(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        prefs = await self.repo.reset(interaction.guild_id or 0, actor_id=interaction.user.id)
        await self._reply(interaction, prefs, "Back to the defaults.")


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(GuildSettingsCog(bot))
