"""`guru explain`: LLM concepts Guru teaches, and real attention heatmaps of its model.

    guru explain --topics [--json]
    guru explain --attention "SENTENCE" --out x.png [--layer L] [--head H | --mean] [--json]
    guru explain QUESTION [--json]   (answered from the concept notes, with cited sources)

QUESTION syncs the notes into Guru's own knowledge base first (a no-op when none changed), then
answers like `guru ask`; the model is loaded only when some note passes the relevance floor.
JSON: {"answer", "sources": [{"n", "title", "uri", "score"}], "refused"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from core.config import Settings
from core.errors import InvalidInput

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Explain LLM concepts; attention heatmaps of the loaded model.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", help="A question about LLM concepts.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--topics", action="store_true", help="List the concept notes' titles.")
    mode.add_argument(
        "--attention",
        metavar="SENTENCE",
        help="Render the model's attention over SENTENCE as a PNG.",
    )
    parser.add_argument("--out", metavar="PNG", help="Where to write the heatmap (--attention).")
    parser.add_argument(
        "--layer", type=int, metavar="L", help="0-based layer (default: the last layer)."
    )
    heads = parser.add_mutually_exclusive_group()
    heads.add_argument("--head", type=int, metavar="H", help="One 0-based attention head.")
    heads.add_argument("--mean", action="store_true", help="Mean over heads (the default).")
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.topics:
        return _print_topics(args.json)
    if args.attention is not None:
        return await _attention(args, settings)
    if args.question:
        return await _answer(args.question, settings, args.json)
    raise InvalidInput('Give a question, --topics, or --attention "SENTENCE" --out x.png.')


def _print_topics(as_json: bool) -> int:
    from core.explain.topics import topics

    rows = topics()
    if as_json:
        print(json.dumps(rows))
    else:
        width = max(len(r["topic"]) for r in rows)
        for row in rows:
            print(f"{row['topic']:<{width}}  {row['title']}")
    return 0


async def _attention(args: argparse.Namespace, settings: Settings) -> int:
    from core.explain.attention import attention_map, describe
    from core.explain.heatmap import render_png
    from core.llm.models.loading import load_model

    if not args.out:
        raise InvalidInput("--attention needs --out PNG: the file to write the heatmap to.")
    if settings.llm_url:
        log.warning(
            "GURU_LLM_URL is set, but the heatmap needs the weights: loading %s locally",
            settings.model,
        )
    loaded = await asyncio.to_thread(load_model, settings.model, settings)
    head = args.head if args.head is not None else "mean"
    amap = await asyncio.to_thread(attention_map, loaded, args.attention, args.layer, head)
    path = await asyncio.to_thread(render_png, amap, args.out)
    if args.json:
        print(json.dumps({**amap.to_dict(), "png": str(path)}))
    else:
        print(describe(amap))
        print(f"heatmap: {path}")
    return 0


async def _answer(question: str, settings: Settings, as_json: bool) -> int:
    from core.cli.ask import print_answer
    from core.explain.kb import ensure_concepts_ingested
    from core.services import Services

    if not question.strip():
        raise InvalidInput('The question is empty; ask about an LLM concept, e.g. "what is LoRA?".')
    services = await Services.open(settings, llm=False, db=True)
    try:
        sync = await ensure_concepts_ingested(services)
        if sync.errors:
            log.warning("%d concept note(s) could not be ingested", len(sync.errors))
        # the bot's /explain path; the model loads only when some note passes the floor
        answer = await services.answers.answer("explain", None, question)
    finally:
        await services.aclose()
    print_answer(answer, as_json)
    return 0
