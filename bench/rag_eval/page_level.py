"""Page-level retrieval on the eval corpus: document support and a document-summary list.

`python -m bench.rag_eval.page_level [--docs DIR]` reads the corpus that `guru bench rag --parts
eval --dtype float32` stored and, for every question, the product's ranked lists before fusion
(`Retriever.ranked_lists`: vector, all-terms, BM25; 50 candidates each). It then ranks pages
in ways the product does not (yet), choosing each family's setting on the even questions
(R@5, then MRR@10) and printing all / even / held-out (odd) R@1 / R@5 / MRR@10:

- document support (`retrieve.document_support`): each page's best chunk ranked by the sum of
  its best N chunk scores (N = 1 is plain fusion), on the vector list alone and on the fusion;
- a document-summary list: one vector per page (its title — for a man page that includes the
  NAME line — optionally with the first prose sentence of the page), pages ranked by cosine to
  the question; a page at rank r adds w / (60 + r) to each of its chunks' fused scores.

No schema change, nothing stored: the summary vectors are embedded here (206 short texts).
`--explain` also runs both on /explain's concept notes (the database `guru bench explain`
keeps; 23 notes, 40 questions, hit@1 / hit@3 as that bench counts them), a corpus of short
documents, to see whether a setting carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.rag_eval.databases import bench_pool, server_url
from bench.rag_eval.evaluate import (CANDIDATES, DEFAULT_DOCS, EVAL_GUILD, _metrics, _pages,
                                     gold_rank, load_questions)
from core.config import Settings
from core.rag.embedder import Embedder
from core.rag.loaders import load_file
from core.rag.retrieve import FUSION_WEIGHTS, RRF_K, SUPPORT_CHUNKS, Retriever, rrf_fuse
from core.rag.types import Hit, ParsedDocument

SUPPORT = (1, 2, 3, 4, 5, 8, CANDIDATES)
SUMMARY_WEIGHTS = (0.5, 1.0, 2.0)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`\"'])")


def first_sentence(doc: ParsedDocument, max_words: int = 40) -> str:
    """The first prose sentence opening one of the first 4 sections (6 to 40 words, mostly
    words, not just the title again): the description measured in bench/rag_eval/README.md."""
    title_words = set(re.findall(r"[a-z0-9]+", doc.title.lower()))
    for section in doc.sections[:4]:
        text = " ".join(section.text.split())
        if text.lower().startswith(("table of contents", "contents")):
            continue
        sentence = _SENTENCE_END.split(text, 1)[0]
        words = sentence.split()
        if not 6 <= len(words) <= max_words:
            continue
        if sum(w.strip(",.;:()'\"").isalpha() for w in words) < 0.7 * len(words):
            continue
        own = set(re.findall(r"[a-z0-9]+", sentence.lower()))
        if len(own - title_words) < 0.3 * len(own):
            continue
        return sentence
    return ""


def _with_summary(fused: list[Hit], summary_rank: dict[str, int], weight: float) -> list[Hit]:
    """Each page's best chunk gets weight / (RRF_K + r) for the page's summary rank r (the
    page's other chunks keep their scores)."""
    bonus = {page: weight / (RRF_K + r) for page, r in summary_rank.items()}
    out, seen = [], set()
    for h in fused:  # best first
        page = Path(h.uri).name
        lead = page not in seen
        seen.add(page)
        out.append(Hit(h.chunk_id, h.document_id, h.title, h.uri, h.text,
                       h.score + (bonus.get(page, 0.0) if lead else 0.0), h.similarity, h.exact))
    return sorted(out, key=lambda h: (-h.score, -h.similarity, h.chunk_id))


async def _collect(settings: Settings, docs: Path) -> dict[str, Any]:
    embedder = Embedder(dtype="float32")
    questions = load_questions()
    pages = sorted(docs.glob("*.html"))
    parsed = [load_file(str(p)) for p in pages]
    texts = {"title": [d.title for d in parsed],
             "title+sentence": [f"{d.title}\n{first_sentence(d)}".strip() for d in parsed]}
    q_emb = await embedder.embed([q.text for q in questions])
    summaries = {name: await embedder.embed(t) for name, t in texts.items()}
    async with server_url(settings) as url, bench_pool(url, "guru_bench_eval") as pool:
        retriever = Retriever(pool, embedder)
        lists = [await retriever.ranked_lists(EVAL_GUILD, q.text, e, CANDIDATES, "hybrid")
                 for q, e in zip(questions, q_emb)]
    embedder.close()
    if not any(lists[0].values()):
        raise SystemExit("No eval corpus: run `guru bench rag --parts eval --dtype float32`.")
    names = [p.name for p in pages]
    summary_ranks = {name: [{names[j]: r for r, j in enumerate(np.argsort(-(v @ e))[:20], 1)}
                            for e in q_emb] for name, v in summaries.items()}
    return {"questions": questions, "lists": lists, "summary_ranks": summary_ranks}


def _fuse(lists: dict[str, list[Hit]], used: tuple[str, ...], support: int) -> list[Hit]:
    weights = dict(zip(("vector", "all_terms", "bm25"), FUSION_WEIGHTS))
    return rrf_fuse([lists[n] for n in used], 3 * CANDIDATES,
                    weights=[weights[n] for n in used], support=support)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the git-doc HTML directory")
    parser.add_argument("--explain", action="store_true",
                        help="also on /explain's concept notes (run `guru bench explain "
                             "--no-answers` once first)")
    args = parser.parse_args()
    if args.explain:
        asyncio.run(_explain(Settings.from_env()))
    data = asyncio.run(_collect(Settings.from_env(), Path(args.docs)))
    questions, lists = data["questions"], data["lists"]

    def ranks(rank_pages: Callable[[int], list[Hit]]) -> list[int | None]:
        return [gold_rank(_pages(rank_pages(i)), q.gold) for i, q in enumerate(questions)]

    families: dict[str, dict[str, list[int | None]]] = {}
    for name, used in (("vector", ("vector",)), ("hybrid", ("vector", "all_terms", "bm25"))):
        families[f"{name} + support N"] = {
            f"N={n}": ranks(lambda i, u=used, n=n: _fuse(lists[i], u, n)) for n in SUPPORT}
    for summary, by_q in data["summary_ranks"].items():
        families[f"hybrid + summary list ({summary}), support N"] = {
            f"w={w} N={n}": ranks(lambda i, w=w, n=n, s=by_q: _with_summary(
                _fuse(lists[i], ("vector", "all_terms", "bm25"), n), s[i], w))
            for w in SUMMARY_WEIGHTS for n in (1, 8)}
    print(f"{'setting':<62} {'all R@1/R@5/MRR':>19}   {'even':>17}   {'held-out (odd)':>17}")
    for family, settings in families.items():
        for label, r in settings.items():
            print(_row(f"{family}: {label}", r))
        best = max(settings, key=lambda s: (_metrics(settings[s][0::2])["recall@5"],
                                            _metrics(settings[s][0::2])["mrr@10"]))
        print(_row(f"  chosen on the even half: {best}", settings[best]) + "\n")


async def _explain(settings: Settings) -> None:
    """hit@1 / hit@3 on the concept notes: plain, with document support, with a summary list."""
    from bench.explain_eval import load_eval_questions, note_of
    from core.explain.answer import EXPLAIN_WEIGHTS
    from core.explain.kb import load_concept_documents

    embedder = Embedder(dtype="float32")
    questions = load_eval_questions()
    notes = load_concept_documents()
    names = [Path(d.uri).name for d in notes]
    summaries = {"title": await embedder.embed([d.title for d in notes]),
                 "title+sentence": await embedder.embed(
                     [f"{d.title}\n{first_sentence(d)}".strip() for d in notes])}
    q_emb = await embedder.embed([q.question for q in questions])
    async with server_url(settings) as url, bench_pool(url, "guru_bench_explain") as pool:
        retriever = Retriever(pool, embedder, weights=EXPLAIN_WEIGHTS)
        lists = [await retriever.ranked_lists(0, q.question, e, 8, "hybrid")
                 for q, e in zip(questions, q_emb)]
    embedder.close()
    print("/explain concept notes (hit@1 / hit@3 of the notes owning the first 1 / 3 chunks):")
    variants = [("plain", 1, 0.0, ""), ("support 2", 2, 0.0, ""), ("support 3", 3, 0.0, ""),
                (f"support {SUPPORT_CHUNKS}", SUPPORT_CHUNKS, 0.0, "")]
    variants += [(f"summary list ({name}) w={w}" + (f", support {n}" if n > 1 else ""), n, w, name)
                 for name in summaries for w in (0.5, 1.0) for n in (1, SUPPORT_CHUNKS)]
    for label, support, weight, name in variants:
        hit1 = hit3 = 0
        for q, e, named in zip(questions, q_emb, lists):
            fused = rrf_fuse([named["vector"], named["all_terms"], named["bm25"]], 200,
                             weights=list(EXPLAIN_WEIGHTS), support=support)
            if weight:
                order = np.argsort(-(summaries[name] @ e))[:20]
                ranks = {names[j]: r for r, j in enumerate(order, 1)}
                fused = _with_summary(fused, ranks, weight)
            top = list(dict.fromkeys(note_of(h) for h in fused[:3]))
            hit1 += note_of(fused[0]) in q.notes
            hit3 += any(n in q.notes for n in top)
        print(f"  {label:<48} {hit1 / len(questions):.3f} / {hit3 / len(questions):.3f}")
    print()


def _row(label: str, r: list[int | None]) -> str:
    def fmt(m: dict[str, float]) -> str:
        return f"{m['recall@1']:.3f} {m['recall@5']:.3f} {m['mrr@10']:.3f}"

    return (f"{label:<62} {fmt(_metrics(r)):>19}   {fmt(_metrics(r[0::2])):>17}   "
            f"{fmt(_metrics(r[1::2])):>17}")


if __name__ == "__main__":
    main()
