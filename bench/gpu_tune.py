"""GPU checks for tuning (run on a CUDA machine; writes one JSON object).

Real weights cannot travel to the GPU box, so both models have random weights: speed and
memory depend on shapes, not values. 1) `run_lora_job` on the GPU path (bf16 autocast, paged
AdamW; QLoRA on a CUDA NF4 base) with SmolLM2's config and tokenizer; 2) Llama-2-7B shapes:
peak memory and tokens/s of LoRA (bf16 base) and QLoRA (NF4 base), r=16 on all linears,
gradient checkpointing, batch 1 x 512 tokens, paged AdamW.

    python -m bench.gpu_tune --smol DIR [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from typing import Any

import torch

from bench.tune import _pairs
from core.tuning.spec import ALL_LINEAR

GB = 2**30  # the "_gb" values of this report are GiB


def smol_runs(smol_dir: str, steps: int) -> list[dict[str, Any]]:
    """Random-weight SmolLM2 saved once, then LoRA and QLoRA through run_lora_job on CUDA."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.tuning.data import Pair, write_jsonl
    from core.tuning.lora import run_lora_job
    from core.tuning.spec import LoraJobSpec

    work = tempfile.mkdtemp()
    model_dir = os.path.join(work, "smol")
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(smol_dir)
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    for name in os.listdir(smol_dir):
        if name != "config.json":
            with (
                open(os.path.join(smol_dir, name), "rb") as src,
                open(os.path.join(model_dir, name), "wb") as dst,
            ):
                dst.write(src.read())
    train = os.path.join(work, "train.jsonl")
    write_jsonl(
        [
            Pair(
                tuple((m["role"], m["content"]) for m in d["messages"][:-1]),
                d["messages"][-1]["content"],
            )
            for d in _pairs(64)
        ],
        train,
    )
    out = []
    for qlora in (False, True):
        torch.cuda.reset_peak_memory_stats()
        spec = LoraJobSpec(
            model=model_dir,
            train_path=train,
            out_dir=os.path.join(work, str(qlora)),
            qlora=qlora,
            max_steps=steps,
            batch_size=8,
            device="cuda",
            checkpoint_every=steps // 2,
            learning_rate=1e-3,
        )
        r = run_lora_job(spec)
        out.append(
            {
                "method": r.method,
                "tokens_per_s": round(r.tokens_per_s),
                "peak_mb": round(r.peak_memory_mb),
                "weights_mb": round(r.model_memory_mb),
                "eval_loss": [round(r.eval_loss_before, 3), round(r.eval_loss_after, 3)],
            }
        )
    return out


def _quantize_linears(model: Any) -> None:
    """Swap every block linear for a bitsandbytes NF4 Linear4bit (quantized on assignment)."""
    import bitsandbytes as bnb

    for module in list(model.model.layers.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                q = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=False,
                    compute_dtype=torch.bfloat16,
                    quant_type="nf4",
                    compress_statistics=True,
                    device="cpu",
                )
                q.weight = bnb.nn.Params4bit(
                    child.weight.data.to("cpu"),
                    requires_grad=False,
                    quant_type="nf4",
                    compress_statistics=True,
                )
                setattr(module, name, q.to("cuda"))
                del child


def llama7b(qlora: bool, steps: int = 3, tokens: int = 512) -> dict[str, Any]:
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
    )
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.requires_grad_(False)
    if qlora:
        _quantize_linears(model)
    torch.cuda.empty_cache()
    weights = torch.cuda.memory_allocated() / GB
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, target_modules=list(ALL_LINEAR), task_type="CAUSAL_LM"),
    )
    optimizer = bnb.optim.PagedAdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 32000, (1, tokens), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    result = {
        "method": "qlora-nf4" if qlora else "lora-bf16",
        "weights_gb": round(weights, 2),
        "peak_gb": round(torch.cuda.max_memory_allocated() / GB, 2),
        "tokens_per_s": round(tokens / min(times[1:] or times)),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    del model, optimizer
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smol", required=True)
    parser.add_argument("--out", default="gpu_tune.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    for key, fn in (
        ("smollm2_random", lambda: smol_runs(args.smol, 20)),
        ("llama2_7b_lora", lambda: llama7b(False)),
        ("llama2_7b_qlora", lambda: llama7b(True)),
    ):
        started = time.perf_counter()
        try:
            report[key] = fn()
        except Exception:  # noqa: BLE001 - report and go on to the next check
            report[key] = {"error": traceback.format_exc()[-1500:]}
        report[key + "_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps({key: report[key]}), flush=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
