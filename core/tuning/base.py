"""A fresh, trainable copy of the base model with LoRA layers on it (never the engine's model).

LoRA: the base in fp32 on CPU, bf16 (or fp16) on GPU, frozen; only the adapter trains.
QLoRA: the base quantized to 4-bit NF4 with double quantization by bitsandbytes, prepared with
peft's `prepare_model_for_kbit_training` (norms upcast, input grads on, gradient
checkpointing); on GPU the optimizer is bitsandbytes' paged AdamW, so optimizer state spikes
spill to CPU memory instead of failing with OOM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.config import force_offline_hub
from core.errors import ModelLoadError
from core.hf_lock import HF_LOAD_LOCK
from core.llm.models.loading import load_tokenizer
from core.llm.models.sources import prepare_model_dir, resolve_source
from core.tuning.spec import LoraJobSpec

__all__ = ["TrainableModel", "load_trainable", "make_optimizer"]

log = logging.getLogger(__name__)


@dataclass
class TrainableModel:
    model: Any  # peft PeftModel around a private base model
    tokenizer: Any
    device: str
    dtype: Any  # torch dtype of the computation (autocast on GPU)
    method: str  # "lora-float32", "lora-bfloat16", "qlora-nf4"


def _device(spec: LoraJobSpec) -> str:
    import torch

    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("Tuning with device=cuda needs a CUDA GPU, and none was found.")
    return "cuda" if spec.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def _compute_dtype(device: str) -> Any:
    import torch

    if device == "cpu":
        return torch.float32  # CPU bf16 matmuls are slow and CPU fp16 is unsupported for training
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_trainable(spec: LoraJobSpec) -> TrainableModel:
    """Load the base from disk (a private copy), optionally 4-bit, and wrap it in LoRA layers."""
    force_offline_hub()
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = _device(spec)
    if device == "cpu":
        torch.set_num_threads(spec.threads)
    dtype = _compute_dtype(device)
    hf_dir = prepare_model_dir(resolve_source(spec.model, spec.data_dir))
    tokenizer = load_tokenizer(hf_dir)
    checkpointing = spec.gradient_checkpointing
    if checkpointing is None:
        checkpointing = spec.qlora
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if spec.qlora:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
    try:
        with HF_LOAD_LOCK:
            model = AutoModelForCausalLM.from_pretrained(str(hf_dir), **kwargs)
    except Exception as exc:  # missing bitsandbytes backend, OOM, corrupt weights
        raise ModelLoadError(f"Loading {spec.model} for tuning failed: {exc}") from exc
    if spec.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    else:
        model.to(device)
        if checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()  # frozen embeddings would cut the graph
    model.config.use_cache = False  # the KV cache is useless in training and fights checkpointing
    lora = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    method = "qlora-nf4" if spec.qlora else f"lora-{str(dtype).removeprefix('torch.')}"
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info(
        "tuning %s as %s on %s: %d trainable parameters", spec.model, method, device, trainable
    )
    return TrainableModel(peft_model, tokenizer, device, dtype, method)


def make_optimizer(tm: TrainableModel, spec: LoraJobSpec) -> Any:
    """AdamW over the adapter's parameters; bitsandbytes' paged AdamW on GPU."""
    import torch

    params = [p for p in tm.model.parameters() if p.requires_grad]
    if tm.device == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
