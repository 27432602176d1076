"""Query expansion for /ask (opt-in, `GURU_ASK_EXPAND`): the core model writes a short passage
answering the question, and hybrid search adds two lists built from it (HyDE: vector search with
the passage's embedding; query2doc: BM25 over the question's and the passage's terms).

Why: Discord questions often share no word with the page that answers them ("copy one commit
onto my branch" → git-cherry-pick), which neither the encoder nor BM25 can bridge; a model that
knows the domain names the feature in its passage. It only helps with a model that does know it:
on bench/rag_eval, Qwen2.5-Coder-1.5B's passages lift hybrid recall@5 from 0.833 to 1.000 (both
halves), SmolLM2-135M's mostly wrong ones drop it to 0.646 with the same weights. Hence off by
default. The prompt is domain-neutral; the eval set's words are kept out of it (tested).
"""

from __future__ import annotations

import logging
import time

from core.llm.types import LLMBackend, Message, Request
from core.rag.embedder import Embedder
from core.rag.prompting import strip_delimiters
from core.rag.retrieve import Expansion

__all__ = [
    "EXPANSION_SYSTEM",
    "EXPANSION_PROMPT",
    "EXPANSION_TOKENS",
    "expansion_messages",
    "expand",
]

log = logging.getLogger(__name__)

EXPANSION_TOKENS = 64  # a short paragraph: the terms come early, and every token costs time
EXPANSION_SYSTEM = "You write short, factual passages of documentation."
# "Name the exact command…" made the models write the feature's name, which is the point
# (a plain "write a passage" gave longer, vaguer text: bench/rag_eval/README.md).
EXPANSION_PROMPT = (
    "Write a short passage from the documentation that answers this question. "
    "Name the exact command, option, setting or feature it uses."
    "\n\nQuestion: {question}"
)


def expansion_messages(question: str, prompt: str = EXPANSION_PROMPT) -> list[Message]:
    return [Message("system", EXPANSION_SYSTEM), Message("user", prompt.format(question=question))]


async def expand(
    llm: LLMBackend, embedder: Embedder, question: str, guild_id: int | None = None
) -> Expansion:
    """The model's passage for `question` (greedy) and its embedding (the passage alone: it
    beat the mean with the question on bench/rag_eval's tuning half)."""
    started = time.perf_counter()
    completion = await llm.complete(
        Request(
            messages=expansion_messages(strip_delimiters(question)),
            guild_id=guild_id or None,
            max_new_tokens=EXPANSION_TOKENS,
            temperature=0.0,
        )
    )
    text = completion.text.strip() or question
    log.info(
        "expansion guild=%s in %.1fs: %s",
        guild_id,
        time.perf_counter() - started,
        text[:80].replace("\n", " "),
    )
    return Expansion(text, await embedder.embed_one(text))
