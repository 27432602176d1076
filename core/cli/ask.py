"""`guru ask QUESTION --guild G [--json]`: a cited answer from the guild's documents.

The same answering path as the bot's /ask (core.answering: the guild's /settings and active
adapter apply). The model is loaded only when some source passes the relevance floor; a refusal
("not in this server's docs", with the closest titles) needs only the database and the encoder
(unless GURU_ASK_EXPAND has the model write a query expansion first).
JSON: {"answer", "sources": [{"n", "title", "uri", "score"}], "refused"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings
from core.rag.types import Answer

__all__ = ["print_answer", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser("ask", help="answer a question from a guild's documents, with sources")
    p.add_argument("question", metavar="QUESTION", help="the question ('-' reads stdin)")
    p.add_argument("--guild", type=guild_id, required=True, metavar="G")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    question = sys.stdin.read().strip() if args.question == "-" else args.question
    async with knowledge_base(settings) as (services, kb):
        await kb.require_guild(args.guild)
        # the bot's /ask path: the guild's settings and active adapter apply
        answer = await services.answers.answer("ask", args.guild, question)
    print_answer(answer, args.json)
    return 0


def print_answer(answer: Answer, as_json: bool = False) -> None:
    """The answer, then its numbered sources (`[n] title — uri`)."""
    if as_json:
        print(json.dumps(answer.to_dict()))
        return
    print(answer.answer)
    for s in answer.sources:
        print(f"[{s.n}] {s.title} — {s.uri}")
