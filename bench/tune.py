"""`guru bench tune` (or `python -m bench.tune`): LoRA vs QLoRA training cost on this machine.

Each method runs in a fresh process (`--worker METHOD`), so its peak memory is its own: a
synthetic instruction set of `--pairs` pairs, `--steps` optimizer steps of `--batch-size`,
through the same `run_lora_job` the worker uses. Reported per method: training tokens/s (all
tokens through forward+backward, prompt included), the weights as held in memory, and the peak
(GPU: max allocated; CPU: the process's peak RSS, which includes loading — for QLoRA on CPU the
fp32 weights exist briefly before they are quantized). Then the single-GPU memory arithmetic of
a Llama-2-7B-class model: full fine-tuning vs LoRA vs QLoRA, computed from its config.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run", "main", "llama2_7b_memory"]

RESULT_PREFIX = "GURU-BENCH-TUNE "
GB = 1e9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--methods", default="lora,qlora", help="comma-separated: lora, qlora")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=16, help="synthetic pairs (~120 tokens each)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--model", default=None, help="base model (default: GURU_MODEL)")
    parser.add_argument("--worker", choices=("lora", "qlora"), help=argparse.SUPPRESS)


def _pairs(n: int) -> list[dict[str, Any]]:
    from core.tuning.data import Pair

    answer = (
        "Our server meets every Friday at 18:00 UTC in the voice channel. Bring questions, "
        "share what you built this week, and read the pinned notes first. "
    ) * 2
    return [
        Pair(
            (("user", f"Question {i}: when and where do we meet, and what should I do?"),),
            f"{answer}(note {i})",
        ).to_json()
        for i in range(n)
    ]


def _measure(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """One method, in this process."""
    from core.tuning.data import Pair, write_jsonl
    from core.tuning.lora import run_lora_job
    from core.tuning.spec import LoraJobSpec

    work = tempfile.mkdtemp(prefix="guru-bench-tune-")
    train = os.path.join(work, "train.jsonl")
    write_jsonl(
        [
            Pair(
                tuple((m["role"], m["content"]) for m in d["messages"][:-1]),
                d["messages"][-1]["content"],
            )
            for d in _pairs(args.pairs)
        ],
        train,
    )
    spec = LoraJobSpec(
        model=args.model or settings.model,
        data_dir=settings.data_dir,
        train_path=train,
        out_dir=os.path.join(work, "run"),
        qlora=args.worker == "qlora",
        max_steps=args.steps,
        batch_size=args.batch_size,
        rank=args.rank,
        alpha=2 * args.rank,
        threads=settings.threads,
        checkpoint_every=10_000,
    )
    r = run_lora_job(spec)
    return {
        "method": r.method,
        "steps": r.steps,
        "train_tokens": r.train_tokens,
        "tokens_per_s": round(r.tokens_per_s, 1),
        "model_memory_mb": round(r.model_memory_mb),
        "peak_memory_mb": round(r.peak_memory_mb),
        "eval_loss": [round(r.eval_loss_before, 3), round(r.eval_loss_after, 3)],
    }


def _spawn(method: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.tune",
        "--worker",
        method,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--pairs",
        str(args.pairs),
        "--rank",
        str(args.rank),
    ] + (["--model", args.model] if args.model else [])
    proc = subprocess.run(argv, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return {"method": method, "error": (proc.stderr or proc.stdout)[-800:]}


def llama2_7b_memory(rank: int = 16) -> dict[str, Any]:
    """Bytes for weights + gradients + AdamW state on one GPU, from Llama-2-7B's shapes.

    Full: bf16 weights and grads + fp32 master copy and two moments = 16 B/param.
    LoRA: frozen bf16 base (2 B/param) + adapter at 16 B/param (fp32 weights, grads, moments).
    QLoRA: NF4 base (4 bits + double-quantized block constants ~0.127 bits/param) for the block
    linears; embeddings and the LM head stay bf16; adapter as in LoRA. Activations come on top
    (with gradient checkpointing ~ layers x hidden x 2 B per token).
    """
    hidden, inter, layers, vocab = 4096, 11008, 32, 32000
    attn, mlp = 4 * hidden * hidden, 3 * hidden * inter
    linear = layers * (attn + mlp)
    embed = 2 * vocab * hidden  # input embeddings + untied LM head
    norms = layers * 2 * hidden + hidden
    total = linear + embed + norms
    lora = layers * rank * (4 * 2 * hidden + 3 * (hidden + inter))  # all seven linears
    nf4 = linear * (4 + 0.127) / 8 + (embed + norms) * 2
    return {
        "params": total,
        f"lora_params_r{rank}": lora,
        "full_finetune_gb": round(total * 16 / GB, 1),
        "lora_gb": round((total * 2 + lora * 16) / GB, 1),
        "qlora_gb": round((nf4 + lora * 16) / GB, 1),
        "checkpointed_activations_gb_per_1k_tokens": round(layers * hidden * 2 * 1000 / GB, 2),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    results = [_spawn(m.strip(), args) for m in args.methods.split(",") if m.strip()]
    report = {
        "model": args.model or settings.model,
        "loadavg": os.getloadavg()[0],
        "methods": results,
        "llama2_7b": llama2_7b_memory(args.rank),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"Tuning cost on {report['model']} ({args.steps} steps x batch {args.batch_size}, "
        f"load avg {report['loadavg']:.1f}):"
    )
    for r in results:
        if "error" in r:
            print(f"  {r['method']:<14} failed: {r['error'].splitlines()[-1:]}")
            continue
        print(
            f"  {r['method']:<14} {r['tokens_per_s']:>8.1f} tok/s  weights "
            f"{r['model_memory_mb']:>6} MB  peak {r['peak_memory_mb']:>6} MB  eval loss "
            f"{r['eval_loss'][0]} -> {r['eval_loss'][1]}"
        )
    m = report["llama2_7b"]
    print(
        f"Llama-2-7B ({m['params'] / 1e9:.2f} B params) on one GPU, weights+grads+AdamW: full "
        f"{m['full_finetune_gb']} GB, LoRA r={args.rank} {m['lora_gb']} GB, QLoRA "
        f"{m['qlora_gb']} GB (+ activations, ~{m['checkpointed_activations_gb_per_1k_tokens']}"
        " GB per 1k tokens checkpointed)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.worker:
        result = _measure(args, settings)
        sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
        return 0
    return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
