"""`guru generate PROMPT`: one completion from the configured model, streamed or as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from core.config import Settings
from core.llm.types import Request, user
from core.services import Services


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a completion for one prompt")
    p.add_argument("prompt", help="the user message ('-' reads it from stdin)")
    p.add_argument("--system", help="an optional system prompt")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P")
    p.add_argument("--seed", type=int, default=None, metavar="S")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    request = Request(
        user(prompt, system=args.system),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
    )
    services = await Services.open(settings, db=False)
    try:
        assert services.llm is not None
        completion = None
        async for event in services.llm.stream(request):
            if event.kind == "text" and not args.json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif event.kind == "done":
                completion = event.completion
        assert completion is not None
    finally:
        await services.aclose()
    if args.json:
        print(
            json.dumps(
                {
                    "text": completion.text,
                    "tokens": completion.completion_tokens,
                    "elapsed_s": round(completion.elapsed_s, 3),
                    "tokens_per_s": round(completion.completion_tokens / completion.elapsed_s, 2)
                    if completion.elapsed_s > 0
                    else 0.0,
                }
            )
        )
    else:
        sys.stdout.write("\n")
    return 0
