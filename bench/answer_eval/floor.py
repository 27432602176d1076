"""The relevance floor on both corpora: answerable questions refused vs off-topic ones passed.

`python -m bench.answer_eval.floor [--docs DIR]` retrieves every question of the git and
Emberfall sets exactly as `Grounder.ground` does (hybrid, k=8, no expansion) and prints, for
each candidate rule, how many answerable questions whose top hit is a gold page it would refuse,
how many answerable questions in all, and how many off-topic questions it would let through to
the model. Rules: an absolute cosine floor (the shipped one), and a floor with a margin (the top
hit passes below the floor when it stands out from the second-best document by `margin`).
Even (tuning) and odd (held-out) halves are printed apart. No model is loaded.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.answer_eval.sets import load_set
from core.rag.grounding import Grounder
from core.rag.types import Hit

__all__ = ["Retrieved", "main", "margin_rule", "floor_rule"]

Rule = Callable[[list[Hit]], bool]  # True: the question passes (reaches the model)
FLOORS = (0.25, 0.275, 0.3, 0.325, 0.35, 0.375, 0.4)
MARGINS = tuple(
    (floor, low, margin)
    for floor in (0.35, 0.375)
    for low in (0.25, 0.28)
    for margin in (0.05, 0.08, 0.1, 0.12)
)


@dataclass(frozen=True)
class Retrieved:
    set_name: str
    question: str
    off_topic: bool
    held_out: bool
    gold_top: bool  # the first hit is a gold page
    hits: list[Hit]


def floor_rule(floor: float) -> Rule:
    """The floor alone: some hit at `floor` or above, or containing every query term."""
    return _rule(Grounder(None, floor=floor, margin=None))  # type: ignore[arg-type]


def margin_rule(floor: float, low: float, margin: float) -> Rule:
    """`floor_rule`, and also a top hit in [low, floor) that leads the best hit of any other
    document by `margin` (one page clearly about the question, in a corpus of short pages)."""
    grounder = Grounder(None, floor=floor, margin=margin, margin_floor=low)  # type: ignore[arg-type]
    return _rule(grounder)


def _rule(grounder: Grounder) -> Rule:
    """Grounder.relevant itself, so the table measures the shipped code with these numbers."""
    return lambda hits: bool(grounder.relevant(hits))


async def retrieve_all(docs: Path) -> list[Retrieved]:
    from bench.rag_eval.databases import eval_retriever

    out: list[Retrieved] = []
    async with eval_retriever() as retriever:
        for name in ("git", "emberfall"):
            qset = load_set(name, git_docs=docs)
            items = qset.items
            vectors = await retriever.embedder.embed([i.question for i in items])
            for item, vector in zip(items, vectors):
                hits = await retriever.search_embedded(
                    qset.guild, item.question, vector, 8, "hybrid"
                )
                top = hits[0].uri.rsplit("/", 1)[-1] if hits else ""
                out.append(
                    Retrieved(
                        name, item.question, item.off_topic, item.held_out, top in item.gold, hits
                    )
                )
    return out


def table(rows: list[Retrieved], rules: dict[str, Rule]) -> str:
    lines = [
        f"{'set':<10} {'rule':<28} {'gold-top refused':>16} {'answerable refused':>18} "
        f"{'off-topic passed':>16}"
    ]
    for name in ("git", "emberfall"):
        mine = [r for r in rows if r.set_name == name]
        for label, rule in rules.items():
            cells = []
            for held in (False, True):
                ans = [r for r in mine if not r.off_topic and r.held_out == held]
                gold = [r for r in ans if r.gold_top]
                cells.append(
                    (
                        sum(not rule(r.hits) for r in gold),
                        len(gold),
                        sum(not rule(r.hits) for r in ans),
                        len(ans),
                    )
                )
            off = [r for r in mine if r.off_topic]
            passed = sum(rule(r.hits) for r in off)
            even, odd = cells
            lines.append(
                f"{name:<10} {label:<28} "
                f"{f'{even[0]}/{even[1]} ({odd[0]}/{odd[1]})':>16} "
                f"{f'{even[2]}/{even[3]} ({odd[2]}/{odd[3]})':>18} "
                f"{f'{passed}/{len(off)}':>16}"
            )
    lines.append("counts: tuning half (held-out half); off-topic: all of the set's")
    return "\n".join(lines)


def main() -> None:
    from bench.rag_eval.evaluate import DEFAULT_DOCS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the git-doc HTML directory")
    args = parser.parse_args()
    rows = asyncio.run(retrieve_all(Path(args.docs)))
    rules: dict[str, Rule] = {f"floor {f}": floor_rule(f) for f in FLOORS}
    for floor, low, margin in MARGINS:
        rules[f"floor {floor}, margin {margin}>{low}"] = margin_rule(floor, low, margin)
    print(table(rows, rules))


if __name__ == "__main__":
    main()
