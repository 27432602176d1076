"""`python -m bench.grounded build|train` (see bench/grounded/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from core.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grounded")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the RAFT-style dataset (appends to --out)")
    b.add_argument("--out", type=Path, help="JSONL (default: <data dir>/grounded/pairs.jsonl)")
    b.add_argument("--per-corpus", type=int, default=40, help="chunks sampled per corpus")
    b.add_argument("--refusal-share", type=float, default=0.2)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--writer", default="qwen2.5-coder-1.5b", help="the model writing the data")
    t = sub.add_parser("train", help="train the adapter for GURU_MODEL on a built dataset")
    t.add_argument("--data", type=Path, help="JSONL (default: <data dir>/grounded/pairs.jsonl)")
    t.add_argument("--max-steps", type=int, default=0, help="0: one pass over the data")
    t.add_argument("--learning-rate", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    default = Path(settings.data_dir) / "grounded" / "pairs.jsonl"
    if args.command == "build":
        from bench.grounded.build import build

        stats = asyncio.run(
            build(
                settings,
                args.out or default,
                per_corpus=args.per_corpus,
                refusal_share=args.refusal_share,
                seed=args.seed,
                writer_model=args.writer,
            )
        )
        print(json.dumps(stats, indent=2))
        return 0
    from bench.grounded.train import train

    changes = {"max_steps": args.max_steps}
    if args.learning_rate is not None:
        changes["learning_rate"] = args.learning_rate
    out = train(settings, args.data or default, **changes)
    print(out)
    print((out / "grounded.json").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
