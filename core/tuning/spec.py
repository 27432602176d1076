"""`LoraJobSpec`: everything one training run needs, with defaults and the reasons for them.

The spec is plain data (it is stored as jsonb in `tuning_jobs.spec`), so a job can be re-run or
resumed on another process from its row alone. `TrainResult` is what a finished run reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.config._model import DEFAULT_MODEL
from core.errors import InvalidInput

__all__ = ["LoraJobSpec", "TrainResult", "Progress", "ALL_LINEAR"]

# Every linear layer of a Llama/Qwen/SmolLM block: the QLoRA paper found adapting all of them
# (not just q/v) is what closes the gap to full fine-tuning.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraJobSpec:
    """One LoRA/QLoRA run. Paths are filled in by the worker; the rest has sensible defaults."""

    # ---- data and places
    model: str = DEFAULT_MODEL  # preset, HF directory or .gguf (as GURU_MODEL)
    data_dir: str = ""  # GURU_DATA_DIR, to find presets' converted weights
    train_path: str = ""  # JSONL of pairs (core.tuning.data.write_jsonl)
    eval_path: str = ""  # may be empty: then eval loss is measured on the train set
    out_dir: str = ""  # work dir: checkpoint.pt, adapter/, loss.png, metrics.json
    # ---- method
    qlora: bool = False  # 4-bit NF4 base (bitsandbytes) + LoRA; else LoRA on fp32/bf16/fp16
    rank: int = 16  # r: 8-64 is the usual range; 16 is plenty for a few hundred pairs
    alpha: int = 32  # scale = alpha / r = 2, the common choice with r=16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_LINEAR
    # ---- optimisation
    # Small models on small sets need a larger step than the 2e-4 used for 7B-class models.
    learning_rate: float = 1e-3
    epochs: int = 3
    max_steps: int = 0  # 0 = epochs decide; else stop after this many optimizer steps
    batch_size: int = 4
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_tokens: int = 512  # longer pairs are cut at the end of the answer
    gradient_checkpointing: bool | None = None  # None = on for QLoRA, off otherwise
    # ---- running
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch threads on CPU
    seed: int = 0
    checkpoint_every: int = 10  # optimizer steps between checkpoints (a kill loses at most this)
    # Questions answered greedily by the model being trained, before and after (the /tune reply
    # shows them; for QLoRA this is the 4-bit model the adapter was trained on).
    probe_prompts: tuple[str, ...] = ()
    probe_tokens: int = 24
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (who asked, source)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["probe_prompts"] = list(self.probe_prompts)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraJobSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"Unknown tuning option(s): {', '.join(unknown)}.")
        values = dict(data)
        for key in ("target_modules", "probe_prompts"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values).validated()

    def replace(self, **changes: Any) -> LoraJobSpec:
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> LoraJobSpec:
        problems = [
            name
            for name, ok in (
                ("rank", self.rank > 0),
                ("alpha", self.alpha > 0),
                ("learning_rate", 0 < self.learning_rate < 1),
                ("epochs", self.epochs > 0),
                ("max_steps", self.max_steps >= 0),
                ("batch_size", self.batch_size > 0),
                ("max_seq_tokens", self.max_seq_tokens >= 16),
                ("checkpoint_every", self.checkpoint_every > 0),
                ("dropout", 0 <= self.dropout < 1),
                ("device", self.device in ("auto", "cpu", "cuda")),
                ("target_modules", bool(self.target_modules)),
            )
            if not ok
        ]
        if problems:
            raise InvalidInput(f"Invalid tuning option(s): {', '.join(problems)}.")
        return self


@dataclass(frozen=True)
class Progress:
    """Reported after every optimizer step (and once per phase change)."""

    phase: str  # "loading", "eval_before", "training", "eval_after", "saving"
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    resumed_from: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """A finished run: where the adapter is and how it did."""

    adapter_dir: str
    plot_path: str
    eval_loss_before: float
    eval_loss_after: float
    train_losses: tuple[float, ...]
    steps: int
    train_tokens: int  # tokens through forward+backward, prompt included
    tokens_per_s: float
    peak_memory_mb: float  # peak GPU memory allocated; on CPU the process's peak RSS
    model_memory_mb: float  # weights as held (4-bit packed for QLoRA), adapter included
    resumed_from: int
    method: str  # "lora-float32", "lora-bfloat16", "qlora-nf4"
    eval_on_train: bool  # True when the set was too small to hold any pair out
    samples_before: dict[str, str] = field(default_factory=dict)  # probe prompt -> answer
    samples_after: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["train_losses"] = list(self.train_losses)
        return data
