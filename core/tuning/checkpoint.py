"""Checkpoints of a training run: the adapter, the optimizer and where we were, in one file.

Written to a temporary name and renamed over the old one, so a kill during the write leaves the
previous checkpoint intact. A checkpoint from a different spec (other rank, lr, data…) is
ignored rather than resumed into a mismatched run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from core.tuning.spec import LoraJobSpec

__all__ = ["RunState", "save_checkpoint", "load_checkpoint", "checkpoint_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunState:
    step: int
    losses: list[float]
    eval_before: float
    tokens: int
    samples_before: dict[str, str]


def checkpoint_path(spec: LoraJobSpec) -> str:
    return os.path.join(spec.out_dir, "checkpoint.pt")


def _fingerprint(spec: LoraJobSpec) -> str:
    """What must match for a checkpoint to belong to this run (not `extra` or thread count)."""
    data = spec.to_dict()
    for key in ("extra", "threads", "checkpoint_every", "probe_prompts", "probe_tokens"):
        data.pop(key, None)
    for key in ("train_path", "eval_path"):
        if data[key] and os.path.isfile(data[key]):
            with open(data[key], "rb") as f:
                data[key] = hashlib.sha256(f.read()).hexdigest()
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save_checkpoint(
    spec: LoraJobSpec,
    model: Any,
    optimizer: Any,
    step: int,
    losses: list[float],
    eval_before: float,
    tokens: int,
    samples_before: dict[str, str],
) -> None:
    import torch
    from peft import get_peft_model_state_dict

    path = checkpoint_path(spec)
    tmp = path + ".tmp"
    torch.save(
        {
            "fingerprint": _fingerprint(spec),
            "step": step,
            "losses": list(losses),
            "eval_before": eval_before,
            "tokens": tokens,
            "samples_before": dict(samples_before),
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)
    log.info("checkpoint at step %d: %s", step, path)


def load_checkpoint(spec: LoraJobSpec, model: Any, optimizer: Any) -> RunState | None:
    """Restore model and optimizer from the run's checkpoint; None when there is none to use."""
    import torch
    from peft import set_peft_model_state_dict

    path = checkpoint_path(spec)
    if not os.path.isfile(path):
        return None
    try:
        # weights_only: tensors and plain containers only. A checkpoint sits in a job dir on
        # disk; a full unpickle would run whatever code a planted file carries.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged checkpoint means "start over", not "fail"
        log.warning("unreadable checkpoint %s; starting over", path, exc_info=True)
        return None
    if saved.get("fingerprint") != _fingerprint(spec):
        log.warning("checkpoint %s belongs to another spec; starting over", path)
        return None
    set_peft_model_state_dict(model, saved["adapter"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return RunState(
        saved["step"],
        list(saved["losses"]),
        saved["eval_before"],
        saved["tokens"],
        dict(saved.get("samples_before", {})),
    )
