"""`python -m bench.grounded build`: the RAFT-style dataset, one (messages, answer) per line.

For chunks sampled from each corpus (bench/grounded/corpora.py, ingested by the product into
its own guild of the `guru_bench_grounded` database):
1. the writer model (the strongest preset) reads the chunk and writes one question a user would
   ask and the short answer copied from the chunk; kept only when that span is in the chunk;
2. the prompt is the product's own: `Answers.prepare` grounds the question as /ask does and
   `Answers.messages` builds the messages, with the gold chunk shown (inserted at a random
   position when retrieval missed it);
3. for `refusal_share` of the questions the gold document is removed from the sources: the
   target is the refusal the prompt asks for; otherwise the writer answers that very prompt and
   the answer is kept only when it states the span and cites the gold [n].
Lines are appended as they are made (a long run can be read, and an interrupted one loses only
the chunk in hand); `<out>.stats.json` counts what was kept and dropped, and why.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.grounded.corpora import CORPORA, Corpus, write_corpora
from bench.grounded.filters import (
    REFUSAL_TARGET,
    Written,
    gold_number,
    keep_answer,
    parse_written,
    span_in_chunk,
    with_gold,
    without_gold,
)
from core.answering import Answers
from core.answering.prepared import ANSWER_TOKENS, REPETITION_PENALTY
from core.config import Settings
from core.llm.types import LLMBackend, Message, Request
from core.rag.faithful import strip_preamble
from core.rag.grounding import Grounding
from core.rag.types import Source
from core.tuning.data import Pair

__all__ = ["Chunk", "Example", "Prompt", "build", "example_for", "prompt_for", "WRITER_MODEL"]

log = logging.getLogger(__name__)

WRITER_MODEL = "qwen2.5-coder-1.5b"  # the strongest installed preset
DATABASE = "guru_bench_grounded"
MIN_CHUNK_CHARS = 300
WRITER_SYSTEM = "You write realistic help-desk questions about software documentation."
WRITER_PROMPT = (
    "Documentation of {title}:\n<<<\n{text}\n>>>\n\n"
    "Write one question a user of {title} would ask that this passage answers, and its answer: "
    "a short phrase copied word for word from the passage (a command, option, number, name or "
    "setting), at most ten words, not a sentence. The question must not contain the answer. "
    "Reply in exactly two lines, like:\n"
    "Question: Which port does the server listen on by default?\nAnswer: 8080"
)


@dataclass(frozen=True)
class Chunk:
    guild: int
    uri: str
    title: str
    text: str


@dataclass(frozen=True)
class Example:
    """One outcome of `example_for`: a pair to train on, or why there is none."""

    pair: Pair | None
    reason: str  # "kept", "kept-refusal", or why it was dropped


async def write_question(llm: LLMBackend, chunk: Chunk) -> Written | None:
    """The writer's question and copied answer for `chunk` (greedy), or None if unparseable."""
    title = chunk.title.split(" › ")[0] or Path(chunk.uri).stem
    prompt = WRITER_PROMPT.format(title=title, text=chunk.text)
    done = await llm.complete(
        Request(
            (Message("system", WRITER_SYSTEM), Message("user", prompt)),
            max_new_tokens=80,
            repetition_penalty=REPETITION_PENALTY,
        )
    )
    return parse_written(done.text)


@dataclass(frozen=True)
class Prompt:
    """The messages of one example and the sources they show."""

    messages: list[Message]
    grounding: Grounding
    gold_n: int | None  # the gold source's [n]; None: removed (a refusal example)


async def prompt_for(
    answers: Answers, chunk: Chunk, written: Written, *, refusal: bool, rng: random.Random
) -> Prompt | str:
    """The product's prompt for a written question (module doc, step 2), or why there is none."""
    if not span_in_chunk(written, chunk.text):
        return "span not in chunk"
    prepared = await answers.prepare("ask", chunk.guild, written.question)
    grounding = prepared.grounding
    if refusal:
        if grounding is None:
            return "refusal: nothing retrieved"
        left = without_gold(grounding, chunk.uri, written.span)
        if left is None:
            return "refusal: no distractor, or one states the span"
        return Prompt(await answers.messages("ask", written.question, left), left, None)
    gold = Source(0, chunk.title.split(" › ")[0] or chunk.uri, chunk.uri, 1.0)
    shown = with_gold(grounding, gold, chunk.text, written.span, rng)
    if shown is grounding and prepared.request is not None:
        messages = list(prepared.request.messages)  # exactly what /ask sends for it
    else:
        messages = await answers.messages("ask", written.question, shown)
    return Prompt(messages, shown, gold_number(shown, chunk.uri))


async def example_for(
    answers: Answers,
    writer: LLMBackend,
    chunk: Chunk,
    written: Written,
    *,
    refusal: bool,
    rng: random.Random,
) -> Example:
    """The training pair for one written question (module doc, steps 2-3)."""
    made = await prompt_for(answers, chunk, written, refusal=refusal, rng=rng)
    if isinstance(made, str):
        return Example(None, made)
    turns = tuple((m.role, m.content) for m in made.messages)
    if made.gold_n is None:
        return Example(Pair(turns, REFUSAL_TARGET), "kept-refusal")
    done = await writer.complete(
        Request(
            tuple(made.messages),
            max_new_tokens=ANSWER_TOKENS,
            repetition_penalty=REPETITION_PENALTY,
        )
    )
    answer = strip_preamble(done.text.strip())
    target = keep_answer(answer, written.span, made.gold_n, made.grounding)
    if target is None:
        log.info(
            "dropped: %r (span %r, gold [%d]) -> %r",
            written.question,
            written.span,
            made.gold_n,
            answer[:300],
        )
        return Example(None, "answer without the span or the gold [n]")
    return Example(Pair(turns, target), "kept" if target == answer else "kept-attributed")


async def _chunks(pool: Any, guild: int, n: int, rng: random.Random) -> list[Chunk]:
    """`n` chunks of the guild's documents, sampled without replacement, spread over documents."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT c.guild_id, d.uri, c.title, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id "
            "WHERE c.guild_id = %(g)s AND d.status = 'ready' AND length(c.text) >= %(m)s "
            "ORDER BY d.uri, c.position",
            {"g": guild, "m": MIN_CHUNK_CHARS},
        )
        rows = [Chunk(*r) for r in await cur.fetchall()]
    rng.shuffle(rows)
    # round-robin over documents, so one long README does not supply every question
    by_doc: dict[str, list[Chunk]] = {}
    for row in rows:
        by_doc.setdefault(row.uri, []).append(row)
    picked: list[Chunk] = []
    while len(picked) < n and any(by_doc.values()):
        for uri in list(by_doc):
            if by_doc[uri] and len(picked) < n:
                picked.append(by_doc[uri].pop())
    return picked


async def _ingest(pool: Any, embedder: Any, corpus: Corpus, folder: Path) -> int:
    from core.rag.ingest import Ingestor
    from core.rag.store import DocumentRepo

    uris = set()
    async for outcome in Ingestor(pool, embedder).ingest_paths(corpus.guild, [str(folder)]):
        uris.add(outcome.uri)
    async with pool.connection() as conn:  # the guild holds exactly this corpus
        documents = DocumentRepo(conn)
        for doc in await documents.list(corpus.guild):
            if doc.uri not in uris:
                await documents.delete(corpus.guild, doc.id)
    return len(uris)


async def build(
    settings: Settings,
    out: Path,
    *,
    per_corpus: int,
    refusal_share: float = 0.2,
    seed: int = 0,
    writer_model: str = WRITER_MODEL,
) -> dict[str, Any]:
    """Write the dataset to `out` (appending) and return the counts (also `<out>.stats.json`)."""
    from bench.rag_eval.databases import bench_pool, server_url
    from core.db.pool import Database
    from core.llm.backend import open_llm
    from core.llm.models.loading import ModelCache
    from core.rag.embedder import Embedder
    from core.services import Services

    rng = random.Random(seed)
    writer_settings = replace(settings, model=writer_model)
    folders = write_corpora(Path(settings.data_dir) / "grounded" / "corpora")
    embedder = Embedder()
    writer = await open_llm(writer_settings, ModelCache())
    counts: Counter[str] = Counter()
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with server_url(settings) as url, bench_pool(url, DATABASE) as pool:
            services = Services(writer_settings, llm=writer, db=Database(pool), embedder=embedder)
            answers = Answers(services)
            for corpus in CORPORA:
                counts[f"{corpus.name} documents"] = await _ingest(
                    pool, embedder, corpus, folders[corpus.name]
                )
                for chunk in await _chunks(pool, corpus.guild, per_corpus, rng):
                    written = await write_question(writer, chunk)
                    if written is None:
                        counts["no question parsed"] += 1
                        continue
                    refusal = rng.random() < refusal_share
                    example = await example_for(
                        answers, writer, chunk, written, refusal=refusal, rng=rng
                    )
                    counts[example.reason] += 1
                    if example.pair is not None:
                        with out.open("a", encoding="utf-8") as f:
                            f.write(json.dumps(example.pair.to_json(), ensure_ascii=False) + "\n")
                    log.info("%s %s: %s", corpus.name, Path(chunk.uri).name, example.reason)
                    _write_stats(out, writer_model, per_corpus, refusal_share, started, counts)
    finally:
        await writer.aclose()
        embedder.close()
    return _write_stats(out, writer_model, per_corpus, refusal_share, started, counts)


def _write_stats(
    out: Path,
    writer: str,
    per_corpus: int,
    refusal_share: float,
    started: float,
    counts: Counter[str],
) -> dict[str, Any]:
    """`<out>.stats.json`, rewritten after every chunk: an interrupted run keeps its counts."""
    stats = {
        "writer": writer,
        "per_corpus": per_corpus,
        "refusal_share": refusal_share,
        "seconds": round(time.monotonic() - started, 1),
        "counts": dict(counts),
    }
    Path(f"{out}.stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats
