"""doc2query at ingest time: the local LLM writes questions each document answers; a search
over those questions becomes one more ranked list in the hybrid fusion.

`python -m bench.rag_eval.doc_questions [--model smollm2-135m] [--prompts user,llama]` reads
the corpus that `guru bench rag --parts eval --dtype float32` stored (database guru_bench_eval),
and for each of its 206 pages asks the model (greedy, at most QUESTION_TOKENS new tokens) for
N_QUESTIONS short questions the page answers, from the page's title and the opening of its
text (its first chunks, up to CONTEXT_CHARS characters). The prompts are generic (a guild's
documents can be about anything) and never see the eval questions:

- `llama`: llama-index's QuestionsAnsweredExtractor template ("generate {n} questions this
  context can provide specific answers to which are unlikely to be found elsewhere"), plus
  "one per line";
- `user`: questions a user who has not read the document would ask, in everyday words rather
  than the document's own names (Discord questions rarely use the feature's name; that is
  the vocabulary gap this is meant to bridge).

Generations are cached in `<data dir>/bench/rag_doc_questions.json` keyed by (model, prompt,
page, context), with the tokens each took and the wall time of the run, so reruns only
re-search. Each generated question is embedded with the product's encoder; for a user's
question the "questions" list ranks documents by their best question's cosine (one entry per
document) and points each at a chunk of the document: its first chunk (`source`, what a
`question` row pointing at its source chunk would return) or the document's best chunk among
the other lists' candidates (`lead`). The list joins the product's lists (vector, all-terms,
BM25; `Retriever.ranked_lists`) in weighted RRF; the variant, its weight and the prompt are
chosen on the even questions (R@5, then MRR@10) and the odd half is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.rag_eval.databases import bench_pool, server_url
from bench.rag_eval.evaluate import (CANDIDATES, EVAL_GUILD, Question, _metrics, _pages,
                                     gold_rank, load_questions)
from core.config import Settings
from core.llm.types import Message, user
from core.rag.embedder import Embedder
from core.rag.retrieve import FUSION_WEIGHTS, Retriever, rrf_fuse
from core.rag.types import Hit

__all__ = ["PROMPTS", "Page", "load_pages", "generate", "parse_questions", "cache_path"]

log = logging.getLogger(__name__)

N_QUESTIONS = 4
QUESTION_TOKENS = 80  # 4 short questions; every token costs ingest time
CONTEXT_CHARS = 1500  # title + the opening of the text (~350 tokens): a man page's NAME,
# SYNOPSIS and the start of DESCRIPTION; the first chunk alone is often just the NAME line
CONCURRENT = 16  # requests in flight: the engine decodes max_batch (8) of them per step
SYSTEM = "You write short, clear questions."
LLAMA = ("Here is the context:\n{context}\n\nGiven the contextual information, generate "
         "{n} questions this context can provide specific answers to which are unlikely to be "
         "found elsewhere. Write one question per line.")
USER = ("Here is the beginning of a document.\n\n{context}\n\nWrite {n} short questions that "
        "someone who has not read this document might ask, and that this document answers. "
        "Write them the way people ask for help in a chat, in everyday words, not with the "
        "document's own names and terms. One question per line.")
PROMPTS = {"llama": LLAMA, "user": USER}
# The list's weight in RRF next to FUSION_WEIGHTS (vector 1, all-terms 1, BM25 0.05). Kept
# small: 24 tuning questions.
WEIGHTS = (0.5, 1.0, 2.0, 3.0)
VARIANTS = ("each", "joined")  # one vector per question / one per page (its questions joined)
PLACEMENTS = ("source", "lead")


@dataclass(frozen=True)
class Page:
    document_id: int
    uri: str
    title: str
    context: str  # what the prompt shows
    first_chunk: Hit  # where a `source` question hit points

    @property
    def name(self) -> str:
        return Path(self.uri).name


async def load_pages(pool: Any, guild: int = EVAL_GUILD) -> list[Page]:
    """Every ready document of the guild with the opening of its text, from the stored chunks
    (the same text ingest would have in hand): "title", then "section: text" per chunk until
    CONTEXT_CHARS."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.id, d.uri, d.title, c.id, c.position, c.title, c.text FROM documents d "
            "JOIN chunks c ON c.document_id = d.id AND c.guild_id = d.guild_id "
            "WHERE d.guild_id = %(g)s AND d.status = 'ready' ORDER BY d.uri, c.position",
            {"g": guild})
        rows = await cur.fetchall()
    by_doc: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_doc.setdefault(row[0], []).append(row)
    pages = []
    for doc_id, chunks in by_doc.items():
        _, uri, title, first_id, _, first_title, first_text = chunks[0]
        parts, used = [], 0
        for *_, chunk_title, text in chunks:
            section = chunk_title.split("›")[-1].strip() if "›" in chunk_title else ""
            text = " ".join(text.split())
            piece = f"{section}: {text}" if section else text
            parts.append(piece[: CONTEXT_CHARS - used])
            used += len(parts[-1])
            if used >= CONTEXT_CHARS:
                break
        context = f"{title}\n\n" + "\n".join(parts)
        pages.append(Page(doc_id, uri, title, context,
                          Hit(first_id, doc_id, first_title, uri, first_text, 0.0, 0.0, False)))
    return pages


def messages(page: Page, prompt: str) -> list[Message]:
    return list(user(PROMPTS[prompt].format(context=page.context, n=N_QUESTIONS), SYSTEM))


def cache_path(settings: Settings) -> Path:
    return settings.data_path / "bench" / "rag_doc_questions.json"


def _key(model: str, prompt: str, page: Page) -> str:
    text = json.dumps([[m.role, m.content] for m in messages(page, prompt)] + [QUESTION_TOKENS])
    return f"{model}|{prompt}|{hashlib.sha256(text.encode()).hexdigest()[:12]}|{page.name}"


_NUMBERING = re.compile(r"^\s*(?:(?:[-*•#]+|\d+[.):]|q\d*[.):]|question\s*\d*[.):])\s*)+",
                        re.I)


def parse_questions(text: str, limit: int = N_QUESTIONS + 1) -> list[str]:
    """The questions of a generation: its lines with a question mark (numbering and bullets
    dropped, duplicates dropped, at most `limit`). Small models wrap them in chatter ("Here
    are four questions ...:", "Here is a sample answer"), so lines without "?" only count when
    no line has one (then every line of 3 words or more not ending in ":"); the whole text when
    nothing is left."""
    lines: list[str] = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line).strip().strip('"*').strip()
        if len(line.split()) >= 3 and line.lower() not in (q.lower() for q in lines):
            lines.append(line)
    asked = [line for line in lines if "?" in line]
    out = (asked or [line for line in lines if not line.endswith(":")])[:limit]
    return out or ([" ".join(text.split())] if text.strip() else [])


async def generate(model: str, prompt: str, pages: list[Page],
                   settings: Settings) -> dict[str, dict[str, Any]]:
    """page name → {"text", "questions", "tokens", "prompt_tokens"}, plus "_run": the wall time
    and tokens of the run that generated the missing ones (the cached run's, when none was)."""
    path = cache_path(settings)
    cache: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    runs = cache.setdefault("_runs", {})
    missing = [p for p in pages if _key(model, prompt, p) not in cache]
    if missing:
        from core.llm.engine import Engine
        from core.llm.loading import load_model
        from core.llm.types import Request

        loaded = await asyncio.to_thread(load_model, model, settings)
        engine = Engine.from_settings(loaded, settings)
        gate = asyncio.Semaphore(CONCURRENT)
        done = 0
        load: list[float] = []

        async def one(page: Page) -> None:
            nonlocal done
            async with gate:
                c = await engine.complete(Request(messages=messages(page, prompt),
                                                  max_new_tokens=QUESTION_TOKENS,
                                                  temperature=0.0))
            cache[_key(model, prompt, page)] = {
                "text": c.text, "tokens": c.completion_tokens,
                "prompt_tokens": c.prompt_tokens, "elapsed_s": round(c.elapsed_s, 3)}
            done += 1
            load.append(os.getloadavg()[0])
            if done % 16 == 0 or done == len(missing):
                log.info("%s/%s %d/%d: %s", model, prompt, done, len(missing),
                         c.text[:100].replace("\n", " | "))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(cache, indent=1))

        started = time.perf_counter()
        try:
            # Warm up (int4 packing, native kernels) outside the timed run.
            await engine.complete(Request(messages=list(user("Say hi.")), max_new_tokens=2))
            started = time.perf_counter()
            await asyncio.gather(*(one(p) for p in missing))
        finally:
            wall = time.perf_counter() - started
            await engine.aclose()
        tokens = sum(cache[_key(model, prompt, p)]["tokens"] for p in missing
                     if _key(model, prompt, p) in cache)
        runs[f"{model}|{prompt}"] = {
            "pages": len(missing), "wall_s": round(wall, 1), "tokens": tokens,
            "load_avg_median": round(float(np.median(load)), 2) if load else None,
            "threads": settings.threads, "max_batch": settings.max_batch}
        path.write_text(json.dumps(cache, indent=1))
    out = {p.name: {**cache[_key(model, prompt, p)],
                    "questions": parse_questions(cache[_key(model, prompt, p)]["text"])}
           for p in pages}
    out["_run"] = runs.get(f"{model}|{prompt}", {})
    return out


def _questions_list(sims: np.ndarray, owner: np.ndarray, pages: list[Page],
                    lead: dict[int, Hit] | None, q_emb: np.ndarray,
                    chunk_emb: dict[int, np.ndarray]) -> list[Hit]:
    """Documents by their best question's cosine, one hit each (CANDIDATES at most): the
    document's first chunk, or with `lead` its best chunk among the other lists' candidates."""
    order = np.argsort(-sims, kind="stable")
    seen: set[int] = set()
    hits: list[Hit] = []
    for i in order:
        doc = int(owner[i])
        if doc in seen:
            continue
        seen.add(doc)
        page = pages[doc]
        hit = (lead or {}).get(page.document_id)
        if hit is None:
            f = page.first_chunk
            hit = Hit(f.chunk_id, f.document_id, f.title, f.uri, f.text, float(sims[i]),
                      float(chunk_emb[f.chunk_id] @ q_emb), False)
        hits.append(hit)
        if len(hits) == CANDIDATES:
            break
    return hits


def _lead_chunks(lists: dict[str, list[Hit]]) -> dict[int, Hit]:
    """Each document's best chunk in plain hybrid fusion."""
    weights = dict(zip(("vector", "all_terms", "bm25"), FUSION_WEIGHTS))
    fused = rrf_fuse([lists[n] for n in weights], 3 * CANDIDATES, weights=list(weights.values()))
    lead: dict[int, Hit] = {}
    for h in fused:
        lead.setdefault(h.document_id, h)
    return lead


async def evaluate(retriever: Retriever, questions: list[Question], pages: list[Page],
                   generated: dict[str, dict[str, dict[str, Any]]],
                   guild: int = EVAL_GUILD) -> dict[str, Any]:
    """`generated`: label (model/prompt) → generate()'s answer. Per label: the questions list
    alone, hybrid + questions (untuned: weight 1, source) and tuned on the even half; the
    baseline modes once."""
    embedder = retriever.embedder
    q_emb = await embedder.embed([q.text for q in questions])
    lists = [await retriever.ranked_lists(guild, q.text, e, CANDIDATES, "hybrid")
             for q, e in zip(questions, q_emb)]
    async with retriever.pool.connection() as conn:
        cur = await conn.execute("SELECT id, embedding::text FROM chunks WHERE id = ANY(%(ids)s)",
                                 {"ids": [p.first_chunk.chunk_id for p in pages]})
        chunk_emb = {cid: np.array(json.loads(e), dtype=np.float32)
                     for cid, e in await cur.fetchall()}
    leads = [_lead_chunks(named) for named in lists]
    plain = dict(zip(("vector", "all_terms", "bm25"), FUSION_WEIGHTS))

    def ranks(fuse: Any) -> list[int | None]:
        return [gold_rank(_pages(fuse(i)), q.gold) for i, q in enumerate(questions)]

    def fused(i: int, weights: dict[str, float], extra: list[Hit] | None = None) -> list[Hit]:
        named = {**lists[i], "questions": extra or []}
        used = [n for n, w in weights.items() if w > 0]
        return rrf_fuse([named[n] for n in used], 3 * CANDIDATES,
                        weights=[weights[n] for n in used])

    report: dict[str, Any] = {"baseline": {
        "vector": ranks(lambda i: lists[i]["vector"]),
        "text": ranks(lambda i: lists[i]["bm25"]),
        "hybrid": ranks(lambda i: fused(i, plain))}}
    for label, gen in generated.items():
        # Question vectors: "each" one per generated question, "joined" one per page.
        each_text, each_owner = [], []
        for d, page in enumerate(pages):
            for text in gen[page.name]["questions"]:
                each_text.append(text)
                each_owner.append(d)
        vectors = {"each": (await embedder.embed(each_text), np.array(each_owner)),
                   "joined": (await embedder.embed(
                       ["\n".join(gen[p.name]["questions"]) or p.title for p in pages]),
                       np.arange(len(pages)))}
        qlists: dict[tuple[str, str], list[list[Hit]]] = {}
        for variant, placement in itertools.product(VARIANTS, PLACEMENTS):
            emb, owner = vectors[variant]
            qlists[variant, placement] = [
                _questions_list(emb @ e, owner, pages,
                                leads[i] if placement == "lead" else None, e, chunk_emb)
                for i, e in enumerate(q_emb)]
        entry: dict[str, Any] = {
            "questions alone (each)": ranks(lambda i: qlists["each", "source"][i]),
            "questions alone (joined)": ranks(lambda i: qlists["joined", "source"][i]),
            "hybrid + questions, untuned (each, source, w 1)": ranks(
                lambda i: fused(i, {**plain, "questions": 1.0}, qlists["each", "source"][i]))}
        for base_name, base in (("vector", {"vector": 1.0}), ("hybrid", plain)):
            best: tuple[tuple[float, float], str, list[int | None]] | None = None
            for (variant, placement), w in itertools.product(qlists, WEIGHTS):
                r = ranks(lambda i, v=variant, p=placement, w=w: fused(
                    i, {**base, "questions": w}, qlists[v, p][i]))
                even = _metrics(r[0::2])
                score = (even["recall@5"], even["mrr@10"])
                if best is None or score > best[0]:  # strict: the first of ties wins
                    best = (score, f"{variant}, {placement}, w {w}", r)
            assert best is not None
            entry[f"{base_name} + questions, tuned on even ({best[1]})"] = best[2]
        run = gen.get("_run", {})
        tokens = [gen[p.name]["tokens"] for p in pages]
        entry["_cost"] = {**run, "tokens_mean": round(float(np.mean(tokens)), 1),
                          "tokens_total": int(np.sum(tokens)),
                          "questions_mean": round(len(each_text) / len(pages), 2),
                          "seconds_per_page": round(run["wall_s"] / run["pages"], 3)
                          if run.get("pages") else None}
        report[label] = entry
    report["_misses"] = {
        label: {name: [q.text for q, rank in zip(questions, r) if rank is None or rank > 5]
                for name, r in entry.items() if not name.startswith("_")}
        for label, entry in report.items() if not label.startswith("_")}
    return report


def _fmt(m: dict[str, float]) -> str:
    return f"{m['recall@1']:.3f} / {m['recall@5']:.3f} / {m['mrr@10']:.3f}"


def render(report: dict[str, Any]) -> str:
    head = ("all R@1 / R@5 / MRR", "even", "held-out (odd)")
    lines = [f"| {'mode':<66} | " + " | ".join(f"{h:<21}" for h in head) + " |",
             f"|{'-' * 68}|{'-' * 23}|{'-' * 23}|{'-' * 23}|"]
    for label, entry in report.items():
        if label.startswith("_"):
            continue
        for name, r in entry.items():
            if name.startswith("_"):
                continue
            full = name if label == "baseline" else f"{label}: {name}"
            lines.append(f"| {full:<66} | {_fmt(_metrics(r))} | {_fmt(_metrics(r[0::2]))} | "
                         f"{_fmt(_metrics(r[1::2]))} |")
        if "_cost" in entry:
            lines.append(f"|   cost: {json.dumps(entry['_cost'])}")
    # The prompt and model too, chosen on the even half: the best tuned hybrid row.
    tuned = [(label, name, r) for label, entry in report.items() if not label.startswith("_")
             for name, r in entry.items() if name.startswith("hybrid + questions, tuned")]
    if tuned:
        label, name, r = max(tuned, key=lambda t: (_metrics(t[2][0::2])["recall@5"],
                                                   _metrics(t[2][0::2])["mrr@10"]))
        lines.append(f"| {'chosen on even: ' + label + ': ' + name:<66} | {_fmt(_metrics(r))} | "
                     f"{_fmt(_metrics(r[0::2]))} | {_fmt(_metrics(r[1::2]))} |")
    return "\n".join(lines)


EXAMPLE_PAGES = ("git-cherry-pick.html", "git-tag.html", "git-restore.html", "git-checkout.html",
                 "git-pull.html", "githooks.html", "git-remote.html", "git-add.html")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    embedder = Embedder(dtype="float32", threads=settings.threads)
    questions = load_questions()
    async with server_url(settings) as url, bench_pool(url, "guru_bench_eval") as pool:
        pages = await load_pages(pool)
        if not pages:
            raise SystemExit("No eval corpus: run `guru bench rag --parts eval --dtype float32`.")
        generated: dict[str, dict[str, dict[str, Any]]] = {}
        for model in [m.strip() for m in args.model.split(",") if m.strip()]:
            for prompt in [p.strip() for p in args.prompts.split(",") if p.strip()]:
                generated[f"{model}/{prompt}"] = await generate(model, prompt, pages, settings)
        report = await evaluate(Retriever(pool, embedder), questions, pages, generated)
    embedder.close()
    report["_examples"] = {label: {name: gen[name]["questions"] for name in EXAMPLE_PAGES
                                   if name in gen} for label, gen in generated.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m",
                        help="comma-separated model presets (default %(default)s)")
    parser.add_argument("--prompts", default="user,llama",
                        help="comma-separated of: " + ", ".join(PROMPTS))
    parser.add_argument("--json", default="", help="also write the report to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = asyncio.run(_main(args))
    print(render(report))
    for label, misses in report["_misses"].items():
        print(f"\nmisses at 5, {label}:")
        for name, texts in misses.items():
            print(f"  {name}: {texts}")
    for label, pages in report["_examples"].items():
        print(f"\ngenerated questions, {label}:")
        for name, qs in pages.items():
            print(f"  {name}: {qs}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
