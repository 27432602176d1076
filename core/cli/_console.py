"""The slash commands of `guru chat`: /ask, /calc, /explain and /docs, offline.

Each one calls the core service its Discord cog calls, for one fixed local server
(`CONSOLE_GUILD_ID`, or `guru chat --guild G`), and prints what the cog would post:
/ask the guild's grounded answer (its /settings and adapter apply) with numbered sources,
/calc the program and its result, /explain a concept-note answer with its notes, /docs the
guild's documents. Nothing is stored as an interaction: there is no Discord user to rate it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable

from core.cli.ask import print_answer
from core.cli.calc import show_result
from core.cli.docs import print_documents
from core.errors import InvalidInput
from core.explain.kb import ensure_concepts_ingested
from core.pal.solver import check_problem
from core.services import Services

__all__ = ["COMMANDS_HELP", "Console"]

log = logging.getLogger(__name__)

COMMANDS_HELP = (
    "/ask QUESTION (from this console's documents, with sources), "
    "/calc PROBLEM (a program that solves it), /explain TOPIC (an LLM concept), "
    "/docs (this console's documents)"
)


class Console:
    """Runs one console command line; `handles(line)` says whether a line is one of ours."""

    def __init__(self, services: Services, guild_id: int) -> None:
        assert services.db is not None, "the console needs Services opened with db=True"
        self.services = services
        self.guild_id = guild_id
        self._notes_synced = False
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/ask": self.ask,
            "/calc": self.calc,
            "/explain": self.explain,
            "/docs": self.docs,
        }

    def handles(self, line: str) -> bool:
        return line.split(maxsplit=1)[0] in self._commands

    async def run(self, line: str) -> None:
        """Run `/command ARGUMENT`; errors are the caller's to print (GuruError)."""
        name, _, argument = line.partition(" ")
        await self._commands[name](argument.strip())

    async def ask(self, question: str) -> None:
        if not question:
            raise InvalidInput("Usage: /ask QUESTION, e.g. /ask how do I reset my password?")
        # "nothing ingested yet: guru ingest … --guild"
        await self.services.knowledge.require_guild(self.guild_id)
        print_answer(await self.services.answers.answer("ask", self.guild_id, question))

    async def calc(self, problem: str) -> None:
        text = check_problem(problem)
        solver = await self.services.pal_solver()  # the first /calc loads the code model
        result = await solver.solve(text)
        show_result(result, errors=sys.stdout)

    async def explain(self, topic: str) -> None:
        if not topic:
            raise InvalidInput("Usage: /explain TOPIC, e.g. /explain attention")
        if not self._notes_synced:  # a no-op after the first start: one SELECT
            sync = await ensure_concepts_ingested(self.services)
            if sync.errors:
                log.warning("%d concept note(s) could not be ingested", len(sync.errors))
            self._notes_synced = True
        print_answer(await self.services.answers.answer("explain", self.guild_id, topic))

    async def docs(self, _: str) -> None:
        docs = await self.services.knowledge.ingestor.list_documents(self.guild_id)
        if not docs:
            print(f"No documents yet: add some with `guru ingest PATH --guild {self.guild_id}`.")
            return
        print_documents(docs)
