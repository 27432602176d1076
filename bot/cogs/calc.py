"""/calc: a math word problem solved by a model-written program run in the sandbox (PAL).

It can take 10-60 s with a code model, so the command defers at once and the reply shows where
it is ("writing code…", "running…") before the program and its result. Generation and the run
are separate core calls (`PalSolver.sample_replies`: GURU_CALC_SAMPLES programs decoded
together; then `solve_from_replies`, which votes, resamples programs that return a literal and
runs the repair round) only so the reply can say which step is under way. The shown answer is stored
as an interaction (command "calc") under 👍/👎, like /ask's.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.answering import asker_of
from bot.checks import admit
from bot.feedback import feedback_view
from bot.progress import BackgroundJobs, ProgressReply, post_pages
from core.interactions import record_question
from core.pal.solver import MAX_PROBLEM_CHARS, PalResult, check_problem

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
MAX_OUTPUT_CHARS = 500


def calc_text(result: PalResult) -> str:
    """The program, what it printed, and the answer, or a short reason why there is none."""
    parts = []
    if result.code:
        # With no answer the program shown is the last one tried, not a checked result.
        title = "**Program**" if result.answer is not None else "**Last program (no answer)**"
        parts.append(f"{title}\n" + render.code_block(result.code, "py"))
    if result.stdout.strip():
        output = render.truncate(result.stdout.strip(), MAX_OUTPUT_CHARS)
        parts.append("**Printed**\n" + render.code_block(output, ""))
    if result.answer is not None:
        note = "" if result.numeric else " (not a number: the program returned this value)"
        parts.append(f"**Answer:** {render.truncate(result.answer, 500)}{note}")
    else:
        reason = render.truncate(result.error or "no answer", MAX_ERROR_CHARS)
        parts.append(f"⚠️ No answer: {reason}")
    if result.repaired:
        parts.append("-# The first program failed; this one is the model's repair.")
    return "\n".join(parts)


def calc_ending(result: PalResult) -> str:
    """How a /calc ended, for its interaction row (`finish_reason`)."""
    if result.answer is not None:
        return "answer"
    return "not_math" if result.not_math else "no_answer"


class Calc(commands.Cog):
    """Solve math word problems with code."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot
        self.jobs = BackgroundJobs()

    async def cog_unload(self) -> None:
        await self.jobs.aclose()

    @app_commands.command(name="calc", description="Solve a math word problem by writing code")
    @app_commands.describe(problem="The problem, with its numbers")
    @app_commands.guild_only()
    async def calc(
        self,
        interaction: discord.Interaction,
        problem: app_commands.Range[str, 3, MAX_PROBLEM_CHARS],
    ) -> None:
        text = check_problem(problem)  # a bad problem is refused privately, before the defer
        await admit(interaction)  # a bad problem above costs nothing
        await interaction.response.defer(thinking=True)
        self.jobs.start(interaction, self._solve(interaction, text), f"calc-{interaction.id}")

    async def _solve(self, interaction: discord.Interaction, problem: str) -> None:
        services = self.bot.services
        assert services is not None and services.db is not None
        progress, started = ProgressReply(interaction), time.monotonic()
        recorded = await record_question(
            services.db.pool, interaction.guild_id, asker_of(interaction), "calc", problem
        )
        await progress.update("✍️ Writing code…")
        solver = await services.pal_solver()  # the first /calc may load the code model
        replies = await solver.sample_replies(problem, guild_id=interaction.guild_id)
        await progress.update("▶️ Running the program…", final=True)
        result = await solver.solve_from_replies(
            problem, replies, guild_id=interaction.guild_id, started=started
        )
        log.info(
            "calc %s: %s in %.1f s",
            interaction.id,
            "answer" if result.answer is not None else "no answer",
            result.elapsed_s,
        )
        text = calc_text(result)
        view = feedback_view(interaction.id) if recorded is not None else None
        await post_pages(interaction, render.pages(text, filename="calc.md"), view=view)
        if recorded is not None:
            await recorded.finish(text, calc_ending(result))


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Calc(bot))
