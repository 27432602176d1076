"""GPU checks for the engine and loader (run on a CUDA machine; prints one JSON object).

Real weights cannot travel to the GPU box, so this uses the real SmolLM2 tokenizer and config
with random weights: speed depends on the architecture, not on the values, and the
correctness checks compare the engine with itself and with transformers' `generate`.

    python -m bench.gpu_check --tokenizer DIR [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from core.config import Settings
from core.llm.engine.engine import Engine
from core.llm.models.loading import LoadedModel, load_model
from core.llm.types import Request, user

PROMPTS = [
    f"Question {n}: tell me a long story about the number {n} and its friends." for n in range(32)
]


def wrap(model: Any, tokenizer: Any, dtype: str) -> LoadedModel:
    return LoadedModel(
        "gpu-check", model.eval(), tokenizer, "cuda", dtype, model.config.max_position_embeddings
    )


async def greedy_texts(engine: Engine, prompts: list[str], n: int, together: bool) -> list[str]:
    requests = [Request(user(p), max_new_tokens=n) for p in prompts]
    if together:
        done = await asyncio.gather(*(engine.complete(r) for r in requests))
    else:
        done = [await engine.complete(r) for r in requests]
    return [c.text for c in done]


async def throughput(engine: Engine, concurrency: int, new_tokens: int) -> dict[str, float]:
    await engine.complete(Request(user("warm up"), max_new_tokens=8))
    started = time.perf_counter()
    done = await asyncio.gather(
        *(
            engine.complete(Request(user(PROMPTS[i % len(PROMPTS)]), max_new_tokens=new_tokens))
            for i in range(concurrency)
        )
    )
    wall = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in done)
    return {
        "concurrency": concurrency,
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "aggregate_tok_s": round(tokens / wall, 1),
        "ttft_p50_s": round(sorted(c.first_token_s or 0 for c in done)[len(done) // 2], 4),
    }


async def engine_checks(tokenizer: Any, config: Any, report: dict[str, Any]) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    fp32 = LlamaForCausalLM(config).to("cuda", torch.float32)
    engine = Engine(wrap(fp32, tokenizer, "float32"), max_batch=8)
    alone = await greedy_texts(engine, PROMPTS[:6], 32, together=False)
    batch = await greedy_texts(engine, PROMPTS[:6], 32, together=True)
    ids = [engine.prompts.encode(user(p)) for p in PROMPTS[:6]]
    with torch.inference_mode():
        ref = [
            tokenizer.decode(
                fp32.generate(torch.tensor([i], device="cuda"), max_new_tokens=32, do_sample=False)[
                    0, len(i) :
                ],
                skip_special_tokens=True,
            )
            for i in ids
        ]
    report["cuda_fp32_batched_equals_alone"] = batch == alone
    report["cuda_fp32_alone_equals_hf_generate"] = alone == ref
    await engine.aclose()
    del fp32

    bf16 = LlamaForCausalLM(config).to("cuda", torch.bfloat16)
    engine = Engine(
        wrap(bf16, tokenizer, "bfloat16"), max_batch=32, max_queue=128, max_queue_per_guild=128
    )
    report["cuda_bf16_throughput"] = [await throughput(engine, c, 128) for c in (1, 8, 32)]
    await engine.aclose()


def loader_checks(tokenizer: Any, report: dict[str, Any]) -> None:
    """load_model on CUDA from an HF directory: auto dtype, 4-bit NF4, 8-bit."""
    tiny = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
    )
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "tiny-hf"
        torch.manual_seed(1)
        LlamaForCausalLM(tiny).save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        for quant in ("none", "4bit", "8bit"):
            key = f"load_cuda_{quant}"
            try:
                settings = Settings(data_dir=tmp, device="cuda", quantization=quant)
                loaded = load_model(str(hf_dir), settings)
                out = asyncio.run(_one_answer(loaded))
                report[key] = {
                    "ok": True,
                    "dtype": loaded.dtype,
                    "device": loaded.device,
                    "tokens": out,
                    "mem_mb": round(torch.cuda.memory_allocated() / 2**20),
                }
            except Exception as exc:  # noqa: BLE001 - report every path, keep going
                report[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}


async def _one_answer(loaded: LoadedModel) -> int:
    engine = Engine(loaded, max_batch=4)
    try:
        done = await asyncio.gather(
            *(engine.complete(Request(user(p), max_new_tokens=16)) for p in PROMPTS[:4])
        )
        return sum(c.completion_tokens for c in done)
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenizer", required=True, help="dir with SmolLM2 tokenizer + config")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    config = AutoConfig.from_pretrained(args.tokenizer)
    for step in (
        lambda: asyncio.run(engine_checks(tokenizer, config, report)),
        lambda: loader_checks(tokenizer, report),
    ):
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}"[:600])
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
