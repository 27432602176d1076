"""`python -m bench.grounded train`: the grounded adapter, through core.tuning's `run_lora_job`.

The dataset is deduplicated and split (core.tuning.data, a hash split: 10% held out for the
eval loss); the run's folder is `<data dir>/adapters/_grounded/v<N>/` (outside every guild's
folder, which are numbered): `adapter/` (peft weights, loss.png, metrics.json) and
`grounded.json` with the base model, the data (size, refusals, hash) and eval loss before and
after. `GURU_GROUNDED_ADAPTER` takes that folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.answering.grounded import METADATA_FILE, grounded_root
from core.config import Settings
from core.rag.answer import declines
from core.tuning.checkpoint import checkpoint_path
from core.tuning.data import dedupe, read_jsonl, split_train_eval, write_jsonl
from core.tuning.lora import run_lora_job
from core.tuning.spec import LoraJobSpec, Progress

__all__ = ["GROUNDED_SPEC", "next_version", "train"]

log = logging.getLogger(__name__)

# Sized for 2 CPU cores: a 0.5B LoRA step on one ~600-token example takes ~30 s here, so the
# run is one pass over the data. Rank 8 on every linear layer; a smaller step than the /tune
# default (1e-3, chosen for a few made-up facts): this teaches a habit, not facts.
GROUNDED_SPEC = LoraJobSpec(
    rank=8,
    alpha=16,
    learning_rate=3e-4,
    epochs=1,
    batch_size=1,
    warmup_steps=3,
    max_seq_tokens=1024,
    checkpoint_every=5,
)


def next_version(root: Path) -> int:
    """1 + the highest `v<N>` folder under `root`."""
    found = [int(p.name[1:]) for p in root.glob("v*") if p.name[1:].isdigit()]
    return max(found, default=0) + 1


def train(
    settings: Settings, data: Path, *, spec: LoraJobSpec = GROUNDED_SPEC, **changes: Any
) -> Path:
    """Train on `data` (JSONL pairs) for `settings.model`; returns the version's folder."""
    pairs = dedupe(read_jsonl(str(data)))
    train_pairs, eval_pairs = split_train_eval(pairs, eval_fraction=0.1)
    root = grounded_root(settings.data_dir)
    out = root / f"v{next_version(root)}"
    out.mkdir(parents=True)
    write_jsonl(train_pairs, str(out / "train.jsonl"))
    write_jsonl(eval_pairs, str(out / "eval.jsonl"))
    spec = replace(
        spec,
        model=settings.model,
        data_dir=settings.data_dir,
        train_path=str(out / "train.jsonl"),
        eval_path=str(out / "eval.jsonl"),
        out_dir=str(out),
        threads=max(1, settings.threads or 1),
        **changes,
    ).validated()

    def report(p: Progress) -> None:
        if p.phase != "training" or p.step % 5 == 0 or p.step == p.total_steps:
            log.info("%s %d/%d loss=%s", p.phase, p.step, p.total_steps, p.loss)

    result = run_lora_job(spec, on_progress=report)
    Path(checkpoint_path(spec)).unlink(missing_ok=True)  # resume state, not part of the adapter
    meta = {
        "base_model": settings.model,
        "version": out.name,
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data": {
            "path": str(data),
            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
            "pairs": len(pairs),
            "train": len(train_pairs),
            "eval": len(eval_pairs),
            "refusals": sum(declines(p.output) for p in pairs),
        },
        "eval_loss_before": result.eval_loss_before,
        "eval_loss_after": result.eval_loss_after,
        "steps": result.steps,
        "tokens_per_s": result.tokens_per_s,
        "peak_memory_mb": result.peak_memory_mb,
        "spec": spec.to_dict(),
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out
