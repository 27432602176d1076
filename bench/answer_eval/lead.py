"""The extractive lead without the model: does the quoted sentence come from a gold page, and
does it state the asked fact?

`python -m bench.answer_eval.lead [--docs DIR] [--held-out]` grounds every answerable question
of the git and Emberfall sets exactly as `Grounder.ground` does, embeds the sources' sentences
once, and prints for each candidate weighting of `core.rag.attribute.lead_scores` (cosine
alone, + the question's words, + a stated command/option/number) how often the lead cites a
gold page and how often it states every fact. The tuning (even) half only, unless --held-out:
the weights are chosen on it, the held-out half is read once to report.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.answer_eval.score import missing_facts
from bench.answer_eval.sets import Item, load_set
from core.rag import attribute
from core.rag.grounding import Grounder

__all__ = ["main"]

WEIGHTS = (
    (0.0, 0.0),
    (0.15, 0.0),
    (0.0, 0.1),
    (0.15, 0.1),
    (0.15, 0.2),
    (0.3, 0.2),
    (0.15, 0.3),
    (0.3, 0.3),
    (0.0, 0.2),
)


@dataclass(frozen=True)
class Case:
    set_name: str
    item: Item
    gold_n: frozenset[int]  # the source numbers that are gold pages
    candidates: list[tuple[int, int, str]]
    similarity: np.ndarray


async def collect(docs: Path, held_out: bool) -> list[Case]:
    from bench.rag_eval.databases import eval_retriever

    cases: list[Case] = []
    async with eval_retriever() as retriever:
        grounder, embedder = Grounder(retriever), retriever.embedder
        for name in ("git", "emberfall"):
            qset = load_set(name, git_docs=docs)
            for item in qset.answerable:
                if item.held_out != held_out:
                    continue
                grounding, _ = await grounder.ground(qset.guild, item.question)
                if grounding is None:
                    continue
                # pick_lead's own candidates and cosines, kept for every weighting
                candidates = attribute.lead_candidates(grounding)
                if not candidates:
                    continue
                vectors = await embedder.embed([item.question, *(c[2] for c in candidates)])
                gold = frozenset(
                    s.n for s in grounding.sources if s.uri.rsplit("/", 1)[-1] in item.gold
                )
                cases.append(Case(name, item, gold, candidates, vectors[1:] @ vectors[0]))
    return cases


def table(cases: list[Case]) -> str:
    lines = [f"{'set':<10} {'term, fact weight':<18} {'lead gold':>10} {'lead states facts':>18}"]
    for name in ("git", "emberfall"):
        mine = [c for c in cases if c.set_name == name]
        for term, fact in WEIGHTS:
            gold = facts = 0
            for case in mine:
                lead = attribute.choose_lead(
                    case.item.question, case.candidates, case.similarity, (term, fact)
                )
                gold += lead.n in case.gold_n
                facts += not missing_facts(lead.text, case.item.facts)
            lines.append(
                f"{name:<10} {f'{term}, {fact}':<18} {f'{gold}/{len(mine)}':>10} "
                f"{f'{facts}/{len(mine)}':>18}"
            )
    lines.append("questions that passed the floor; lead gold: the quoted sentence's page is gold")
    return "\n".join(lines)


def main() -> None:
    from bench.rag_eval.evaluate import DEFAULT_DOCS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the git-doc HTML directory")
    parser.add_argument("--held-out", action="store_true", help="the held-out half instead")
    parser.add_argument("--show", action="store_true", help="print each question's lead")
    args = parser.parse_args()
    cases = asyncio.run(collect(Path(args.docs), args.held_out))
    print(table(cases))
    if args.show:
        for case in cases:
            lead = attribute.choose_lead(case.item.question, case.candidates, case.similarity)
            mark = ("G" if lead.n in case.gold_n else "-") + (
                "F" if not missing_facts(lead.text, case.item.facts) else "-"
            )
            print(
                f"{case.item.id} {mark} {case.item.question[:50]!r} -> [{lead.n}] {lead.text[:120]}"
            )


if __name__ == "__main__":
    main()
