"""An LLM as the reranker of hybrid search (issue #4: "a reranker if one from MODELS.md helps").

MODELS.md has no cross-encoder, so the rerankers measured here are the instruct models it does
have, asked listwise: the question and the page names of hybrid search's top N pages (labelled
A, B, …; a man page's name carries its NAME line, "git-tag(1) — Create, list, delete or verify
a tag object …"), "which page documents the command or feature that answers the question?",
and each page scored by the logit of its letter after one forward pass (no decoding). A page's
LLM rank r then adds w / (k + r) to its hybrid RRF position score 1 / (k + hybrid rank).

The pages are asked in hybrid order and again in reverse order: a model that reads the list
follows the pages, one that mostly picks early letters follows the order. `--orders both` adds
the two log-softmaxed score lists (the usual fix for position bias).

`python -m bench.rag_eval.rerank --model qwen2.5-coder-1.5b` (after `guru bench rag --parts eval
--dtype float32` stored the corpus and `guru models install` the model). Weights are chosen on
the even questions; the odd half is held out, as in bench/rag_eval/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import string
import time
from pathlib import Path
from typing import Any

import torch

from bench.rag_eval.databases import bench_pool, server_url
from bench.rag_eval.evaluate import CANDIDATES, EVAL_GUILD, _metrics, gold_rank, load_questions
from core.config import Settings
from core.llm.loading import load_model
from core.rag.embedder import Embedder
from core.rag.retrieve import Retriever

LETTERS = string.ascii_uppercase  # single tokens in Qwen's and Llama's vocabularies
WEIGHTS = (0.5, 1.0, 2.0, 4.0)
RRF_KS = (5, 20, 60)
PROMPT = ('Question from a Git user: "{question}"\n\nDocumentation pages:\n{pages}\n\n'
          "Which page documents the command or feature that answers the question? "
          "Answer with the letter only.")


@dataclasses.dataclass
class Candidates:
    gold: frozenset[str]
    pages: list[str]  # file names, hybrid order
    names: list[str]  # page titles without the section


async def _candidates(settings: Settings, n: int) -> tuple[list[str], list[Candidates]]:
    questions = load_questions()
    embedder = Embedder(dtype="float32")
    embeddings = await embedder.embed([q.text for q in questions])
    out = []
    async with server_url(settings) as url, bench_pool(url, "guru_bench_eval") as pool:
        retriever = Retriever(pool, embedder)
        for q, e in zip(questions, embeddings):
            hits = await retriever.search_embedded(EVAL_GUILD, q.text, e, 3 * CANDIDATES,
                                                   "hybrid")
            pages: dict[str, str] = {}
            for h in hits:
                pages.setdefault(Path(h.uri).name, h.title.split(" › ")[0])
            top = list(pages.items())[:n]
            out.append(Candidates(q.gold, [p for p, _ in top], [t for _, t in top]))
    embedder.close()
    if not any(c.pages for c in out):
        raise SystemExit("No eval corpus: run `guru bench rag --parts eval --dtype float32`.")
    return [q.text for q in questions], out


def _letter_scores(loaded: Any, question: str, names: list[str]) -> list[float]:
    """Log-softmax over the candidates' letters after the prompt (one forward pass)."""
    tok, model = loaded.tokenizer, loaded.model
    listing = "\n".join(f"{letter}. {name}" for letter, name in zip(LETTERS, names))
    text = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT.format(question=question, pages=listing)}],
        tokenize=False, add_generation_prompt=True)
    ids = [tok.encode(letter, add_special_tokens=False)[0] for letter in LETTERS[:len(names)]]
    enc = tok(text, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        logits = model(**enc).logits[0, -1, ids].float()
    return torch.log_softmax(logits, -1).tolist()


def _rerank(c: Candidates, scores: list[float], weight: float, k: int) -> int | None:
    llm_rank = {j: r for r, j in enumerate(sorted(range(len(scores)), key=lambda j: -scores[j]), 1)}
    fused = sorted(range(len(c.pages)),
                   key=lambda j: -(1 / (k + j + 1) + weight / (k + llm_rank[j])))
    return gold_rank([c.pages[j] for j in fused], c.gold)


def _row(label: str, ranks: list[int | None]) -> str:
    def fmt(m: dict[str, float]) -> str:
        return f"{m['recall@1']:.3f} / {m['recall@5']:.3f} / {m['mrr@10']:.3f}"

    return (f"{label:<34} {fmt(_metrics(ranks)):>23}  {fmt(_metrics(ranks[0::2])):>23}  "
            f"{fmt(_metrics(ranks[1::2])):>23}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="preset or model path")
    parser.add_argument("--pages", type=int, default=26, help="pages reranked (at most 26)")
    args = parser.parse_args()
    settings = dataclasses.replace(Settings.from_env(), dtype="bfloat16")
    texts, cands = asyncio.run(_candidates(settings, min(args.pages, len(LETTERS))))
    loaded = load_model(args.model, settings)
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    forward = [_letter_scores(loaded, t, c.names) for t, c in zip(texts, cands)]
    per_question = (time.perf_counter() - started) / len(texts)
    backward = [_letter_scores(loaded, t, c.names[::-1])[::-1] for t, c in zip(texts, cands)]
    orders = {"hybrid order": forward, "reversed": backward,
              "both (summed)": [[a + b for a, b in zip(f, r)] for f, r in zip(forward, backward)]}
    print(f"{args.model}: {per_question:.1f} s per question and order "
          f"({len(cands[0].pages)} pages)\n")
    print(f"{'ranking':<34} {'all R@1 / R@5 / MRR':>23}  {'even':>23}  {'held-out (odd)':>23}")
    print(_row("hybrid", [gold_rank(c.pages, c.gold) for c in cands]))
    for name, scores in orders.items():
        alone = [_rerank(c, s, 1e6, 60) for c, s in zip(cands, scores)]
        print(_row(f"LLM alone, {name}", alone))
        grid = {(w, k): [_rerank(c, s, w, k) for c, s in zip(cands, scores)]
                for w in WEIGHTS for k in RRF_KS}
        best = max(grid, key=lambda wk: (_metrics(grid[wk][0::2])["recall@5"],
                                         _metrics(grid[wk][0::2])["mrr@10"]))
        print(_row(f"  fused, chosen on even: w={best[0]} k={best[1]}", grid[best]))


if __name__ == "__main__":
    main()
