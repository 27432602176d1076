"""`run_lora_job(spec)`: one LoRA/QLoRA instruction-tuning run, resumable from its checkpoint.

The recipe (peft's SFT example, without the Trainer so each step is visible):
1) load a fresh base + LoRA layers (`core.tuning.base`) and the pairs, encoded with answer-only
   labels (`core.tuning.examples`);
2) resume from `out_dir/checkpoint.pt` if a killed run left one, else measure the eval loss;
3) train: warmup then cosine learning rate, clipped gradients, a checkpoint every N steps;
4) measure the eval loss again, save the adapter alone (never merged: merging into a 4-bit base
   would bake quantization error into the weights), with loss.png and metrics.json beside it.
Synchronous and CPU/GPU-heavy: the worker calls it in a thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from core.tuning.base import TrainableModel, load_trainable, make_optimizer
from core.tuning.checkpoint import load_checkpoint, save_checkpoint
from core.tuning.data import read_jsonl
from core.tuning.examples import Example, collate, encode_pairs
from core.tuning.plot import plot_losses
from core.tuning.spec import LoraJobSpec, Progress, TrainResult

__all__ = ["run_lora_job", "get_lr", "peak_memory_mb", "model_memory_mb"]

log = logging.getLogger(__name__)
ProgressFn = Callable[[Progress], None]


def get_lr(step: int, spec: LoraJobSpec, total: int) -> float:
    # 1) linear warmup from lr/warmup to lr
    if step < spec.warmup_steps:
        return spec.learning_rate * (step + 1) / spec.warmup_steps
    # 2) cosine decay down to 10% of lr at the last step
    span = max(1, total - spec.warmup_steps)
    ratio = min(1.0, (step - spec.warmup_steps) / span)
    return spec.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * ratio)))


def batch_indices(step: int, n: int, spec: LoraJobSpec) -> list[int]:
    """The examples of `step`: a fixed shuffle per epoch, so a resumed run sees the same order."""
    import torch

    per_epoch = math.ceil(n / spec.batch_size)
    epoch, i = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed * 10_007 + epoch))
    return order[i * spec.batch_size : (i + 1) * spec.batch_size].tolist()


def _autocast(tm: TrainableModel) -> Any:
    import torch

    if tm.device == "cuda":
        return torch.autocast("cuda", dtype=tm.dtype)
    return nullcontext()


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def evaluate(tm: TrainableModel, examples: list[Example], batch_size: int) -> float:
    """Mean loss per answer token over `examples` (dropout off, no gradients)."""
    import torch

    pad = tm.tokenizer.pad_token_id
    total, count = 0.0, 0
    tm.model.eval()
    with torch.no_grad(), _autocast(tm):
        for start in range(0, len(examples), batch_size):
            batch = _to(collate(examples[start : start + batch_size], pad), tm.device)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(tm.model(**batch).loss) * n
            count += n
    return total / max(count, 1)


def probe(tm: TrainableModel, spec: LoraJobSpec) -> dict[str, str]:
    """Greedy answers of the model as it is now to `spec.probe_prompts`."""
    import torch

    answers: dict[str, str] = {}
    tm.model.eval()
    for question in spec.probe_prompts:
        text = tm.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        ids = tm.tokenizer(text, add_special_tokens=False, return_tensors="pt").to(tm.device)
        with torch.no_grad(), _autocast(tm):
            out = tm.model.generate(
                **ids,
                max_new_tokens=spec.probe_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=tm.tokenizer.pad_token_id,
            )
        answers[question] = tm.tokenizer.decode(
            out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()
    return answers


def model_memory_mb(model: Any) -> float:
    """Bytes of the parameters and buffers as stored (a packed 4-bit weight counts 0.5 B)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated, or the process's peak RSS on CPU."""
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_step(
    tm: TrainableModel, optimizer: Any, batch: dict[str, Any], spec: LoraJobSpec, lr: float
) -> float:
    import torch

    tm.model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    with _autocast(tm):
        loss = tm.model(**_to(batch, tm.device)).loss
    loss.backward()
    params = [p for p in tm.model.parameters() if p.requires_grad]
    torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _save_adapter(tm: TrainableModel, out_dir: str) -> str:
    final, tmp = os.path.join(out_dir, "adapter"), os.path.join(out_dir, "adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tm.model.save_pretrained(tmp)  # adapter weights + adapter_config.json only
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def run_lora_job(spec: LoraJobSpec, on_progress: ProgressFn | None = None) -> TrainResult:
    """Train one adapter as `spec` says; resumes from `spec.out_dir/checkpoint.pt` if present."""
    report = on_progress or (lambda p: None)
    os.makedirs(spec.out_dir, exist_ok=True)
    report(Progress("loading"))
    # 1) fresh model, encoded data
    tm = load_trainable(spec)
    train = encode_pairs(tm.tokenizer, read_jsonl(spec.train_path), spec.max_seq_tokens)
    held = read_jsonl(spec.eval_path) if spec.eval_path else []
    evals = encode_pairs(tm.tokenizer, held, spec.max_seq_tokens) or train
    total = spec.max_steps or spec.epochs * math.ceil(len(train) / spec.batch_size)
    optimizer = make_optimizer(tm, spec)
    # 2) resume, or measure where we start
    state = load_checkpoint(spec, tm.model, optimizer)
    if state is not None:
        start, losses, before, tokens = state.step, state.losses, state.eval_before, state.tokens
        samples_before = state.samples_before
        log.info("resuming %s at step %d of %d", spec.out_dir, start, total)
    else:
        report(Progress("eval_before", 0, total))
        start, losses, tokens = 0, [], 0
        before = evaluate(tm, evals, spec.batch_size)
        samples_before = probe(tm, spec)
    # 3) train
    began, trained_tokens = time.perf_counter(), 0
    for step in range(start, total):
        batch = collate(
            [train[i] for i in batch_indices(step, len(train), spec)], tm.tokenizer.pad_token_id
        )
        losses.append(_train_step(tm, optimizer, batch, spec, get_lr(step, spec, total)))
        trained_tokens += int(batch["attention_mask"].sum())
        report(Progress("training", step + 1, total, losses[-1], start))
        if (step + 1) % spec.checkpoint_every == 0 and step + 1 < total:
            save_checkpoint(
                spec,
                tm.model,
                optimizer,
                step + 1,
                losses,
                before,
                tokens + trained_tokens,
                samples_before,
            )
    elapsed = time.perf_counter() - began
    # 4) measure, save, draw
    report(Progress("eval_after", total, total, losses[-1] if losses else None, start))
    after = evaluate(tm, evals, spec.batch_size)
    samples_after = probe(tm, spec)
    report(Progress("saving", total, total, None, start))
    adapter_dir = _save_adapter(tm, spec.out_dir)
    plot = plot_losses(
        os.path.join(adapter_dir, "loss.png"),
        losses,
        before,
        after,
        f"{tm.method} on {os.path.basename(spec.model.rstrip('/'))}",
    )
    result = TrainResult(
        adapter_dir=adapter_dir,
        plot_path=plot,
        eval_loss_before=before,
        eval_loss_after=after,
        train_losses=tuple(losses),
        steps=total,
        train_tokens=tokens + trained_tokens,
        tokens_per_s=trained_tokens / elapsed if elapsed > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(tm.device),
        model_memory_mb=model_memory_mb(tm.model),
        resumed_from=start,
        method=tm.method,
        eval_on_train=not held,
        samples_before=samples_before,
        samples_after=samples_after,
    )
    with open(os.path.join(adapter_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(result.metrics(), f, indent=2)
    log.info("tuned %s: eval loss %.3f -> %.3f in %d steps", spec.out_dir, before, after, total)
    return result
