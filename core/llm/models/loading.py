"""Resolve a model spec (preset, HF directory, .gguf file) into a loaded model + tokenizer.

`load_model` is synchronous and slow on first use (a GGUF is converted once, ~1 min); the
engine calls it off the event loop. A `ModelCache`, owned by `Services`, makes a second load
of the same weights in the same process return the very same `LoadedModel`.

On the CPU in fp32 the transformers model is built only when something needs it (`LazyModel`:
a LoRA step, /explain's heatmap, transformers' forward, dense weights): the engine's packed
path runs on the mapped safetensors (`ModelWeights`) and never imports transformers' model
code, ~130 MiB and 2.5-4 s of every start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Settings, force_offline_hub
from core.errors import ModelLoadError
from core.hf_lock import HF_LOAD_LOCK
from core.llm.engine.memory import release_freed_memory, serve_large_blocks_from_mmap
from core.llm.models.sources import ModelSource, prepare_model_dir, resolve_source

if TYPE_CHECKING:  # weights.py imports torch: not at CLI start-up (tests/unit/test_cli_startup.py)
    from core.llm.models.weights import ModelWeights

__all__ = [
    "LazyModel",
    "LoadedModel",
    "Placement",
    "ModelCache",
    "resolve_placement",
    "load_model",
    "load_tokenizer",
]

log = logging.getLogger(__name__)

# Used only when a HF directory ships no chat template: ChatML, which SmolLM2 and Qwen use.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LazyModel:
    """The transformers model of a HF directory, built on first use (once, thread-safe).
    Until then only its config and generation config are read."""

    def __init__(self, hf_dir: Path, placement: Placement) -> None:
        from transformers import AutoConfig, GenerationConfig  # no model code

        self.hf_dir, self.placement = hf_dir, placement
        with HF_LOAD_LOCK:
            self.config = AutoConfig.from_pretrained(str(hf_dir), local_files_only=True)
            try:  # what from_pretrained sets as the model's generation_config
                self.generation_config = GenerationConfig.from_pretrained(
                    str(hf_dir), local_files_only=True
                )
            except OSError:  # no generation_config.json
                self.generation_config = GenerationConfig.from_model_config(self.config)
        self._lock = threading.Lock()
        self._model: Any = None
        self._weights: ModelWeights | None = None

    @property
    def built(self) -> bool:
        return self._model is not None

    def get(self) -> Any:
        """The transformers model (built now if it is not yet: seconds)."""
        with self._lock:
            if self._model is None:
                started = time.monotonic()
                self._model = _load_weights(self.hf_dir, self.placement)
                log.info(
                    "built the transformers model of %s in %.1f s",
                    self.hf_dir,
                    time.monotonic() - started,
                )
            return self._model

    def weights(self) -> ModelWeights | None:
        """The model's tensors: the built model's own once it exists, else the mapped
        safetensors (None when those are not fp32 safetensors)."""
        with self._lock:
            from core.llm.models.weights import ModelWeights

            if self._model is not None:
                return ModelWeights.of_model(self._model)
            if self._weights is None:
                self._weights = ModelWeights.from_dir(self.hf_dir)
            return self._weights


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the engine. `model` is a transformers causal LM in eval mode, built
    on first use when `hf` is a `LazyModel`."""

    name: str  # preset name or path, for /status and logs
    hf: Any  # transformers PreTrainedModel, or a LazyModel that builds it on first use
    tokenizer: Any  # transformers PreTrainedTokenizerBase, with a chat template
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16", "float16", "nf4", "int8"
    context_tokens: int  # the model's own window (max_position_embeddings)
    path: str = ""  # the HF-format directory the weights were read from
    load_s: float = 0.0  # wall time of the load, conversion included

    @property
    def model(self) -> Any:
        """The transformers model (with a `LazyModel`, built by the first caller)."""
        return self.hf.get() if isinstance(self.hf, LazyModel) else self.hf

    @property
    def config(self) -> Any:
        return self.hf.config

    @property
    def generation_config(self) -> Any:
        return getattr(self.hf, "generation_config", None)

    def weights(self) -> ModelWeights | None:
        """What the lean forward runs on: without building the transformers model when it
        is not built yet (`LazyModel.weights`); None when that is not possible."""
        if isinstance(self.hf, LazyModel):
            return self.hf.weights()
        from core.llm.models.weights import ModelWeights

        return ModelWeights.of_model(self.hf)


@dataclass(frozen=True)
class Placement:
    """Where and how the weights live: resolved from settings, never "auto"."""

    device: str  # "cpu" or "cuda"
    dtype: str  # torch dtype name of the weights (the compute dtype when quantized)
    quantization: str  # "none", "4bit" or "8bit"

    @property
    def label(self) -> str:
        return {"4bit": "nf4", "8bit": "int8"}.get(self.quantization, self.dtype)


def resolve_placement(
    settings: Settings, cuda: bool | None = None, bf16: bool | None = None
) -> Placement:
    """Device, dtype and quantization from settings; `cuda`/`bf16` override detection in tests."""
    import torch

    has_cuda = torch.cuda.is_available() if cuda is None else cuda
    if settings.device == "cuda" and not has_cuda:
        raise ModelLoadError(
            "GURU_DEVICE=cuda, but no CUDA GPU was found (torch.cuda.is_available() is False, "
            f"torch {torch.__version__}). Set GURU_DEVICE=auto or cpu."
        )
    device = (
        "cuda" if settings.device == "cuda" or (settings.device == "auto" and has_cuda) else "cpu"
    )
    if settings.quantization != "none" and device != "cuda":
        found = (
            "GURU_DEVICE=cpu rules it out"
            if settings.device == "cpu"
            else f"none was found (GURU_DEVICE={settings.device}, "
            "torch.cuda.is_available() is False)"
        )
        raise ModelLoadError(
            f"GURU_QUANTIZATION={settings.quantization} needs a CUDA GPU; {found}. bitsandbytes "
            "4/8-bit loading needs CUDA: unset GURU_QUANTIZATION to run unquantized on the CPU."
        )
    dtype = settings.dtype
    if dtype == "auto":
        if device == "cpu":
            dtype = "float32"
        else:
            supported = torch.cuda.is_bf16_supported() if bf16 is None else bf16
            dtype = "bfloat16" if supported else "float16"
    if settings.quantization == "8bit" and settings.dtype in ("auto", "float32"):
        # bitsandbytes' int8 matmul computes in fp16 and warns on every call for bf16 input.
        dtype = "float16"
    elif settings.quantization == "4bit" and dtype == "float32":
        dtype = "bfloat16"  # the compute dtype of the NF4 layers; fp32 would only slow them
    return Placement(device, dtype, settings.quantization)


def _added_tokens(tokenizer_json: Path) -> dict[int, Any] | None:
    """The "added_tokens" list of a tokenizer.json, parsed alone (it comes before the
    vocabulary): None when it is not where `tokenizers` writes it."""
    from tokenizers import AddedToken

    text = tokenizer_json.read_text(encoding="utf-8")
    key = text.find('"added_tokens":', 0, 4096)
    start = text.find("[", key)
    if key < 0 or start < 0:
        return None
    try:
        tokens, _ = json.JSONDecoder().raw_decode(text, start)
        return {int(t.pop("id")): AddedToken(**t) for t in tokens}
    except (ValueError, TypeError, KeyError):
        return None


def _tokenizer(hf_dir: Path) -> Any:
    """The tokenizer straight from tokenizer.json (the Rust tokenizer, its added tokens
    passed in), else as AutoTokenizer loads it. transformers 5 otherwise parses the whole
    tokenizer.json in Python (twice for a class such as Qwen2Tokenizer, which rebuilds its
    vocabulary and merges in Python): 1.8 s and ~130 MB of transient memory for Qwen2.5's
    151k vocabulary, against 0.7 s; the tokens are the same (tests/integration/test_tokenizer)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = hf_dir / "tokenizer.json"
    added = _added_tokens(path) if path.is_file() else None
    if added is None:
        return AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True)
    return PreTrainedTokenizerFast.from_pretrained(
        str(hf_dir), local_files_only=True, added_tokens_decoder=added
    )


def load_tokenizer(hf_dir: Path) -> Any:
    """The tokenizer of a HF directory, with a pad token and a chat template guaranteed."""
    force_offline_hub()
    with HF_LOAD_LOCK:
        tokenizer = _tokenizer(hf_dir)
    release_freed_memory()  # reading the 11 MB JSON leaves ~90 MB of freed heap (Qwen2.5)
    if tokenizer.pad_token is None:
        # Batched decoding pads; eos is safe as pad because padded positions are masked.
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        log.warning("%s has no chat template; using ChatML", hf_dir)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def _from_pretrained_kwargs(placement: Placement) -> dict[str, Any]:
    import torch

    dtype = getattr(torch, placement.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if placement.device == "cuda":
        kwargs["device_map"] = {"": 0}
    if placement.quantization != "none":
        from transformers import BitsAndBytesConfig

        if placement.quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    return kwargs


def _load_weights(hf_dir: Path, placement: Placement) -> Any:
    force_offline_hub()
    from transformers import AutoModelForCausalLM

    try:
        with HF_LOAD_LOCK:
            model = AutoModelForCausalLM.from_pretrained(
                str(hf_dir), **_from_pretrained_kwargs(placement)
            )
    except Exception as exc:  # corrupt weights, missing bitsandbytes, OOM...: translate here
        raise ModelLoadError(
            f"Loading the model in {hf_dir} on {placement.device} as {placement.label} "
            f"failed: {exc}"
        ) from exc
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _load(source: ModelSource, placement: Placement, settings: Settings) -> LoadedModel:
    import torch

    started = time.monotonic()
    if placement.device == "cpu":
        torch.set_num_threads(settings.threads)
        serve_large_blocks_from_mmap()  # bounds the heap a long prompt grows (memory.py)
    hf_dir = prepare_model_dir(source)
    try:
        tokenizer = load_tokenizer(hf_dir)
        model: Any = (
            LazyModel(hf_dir, placement)
            if placement == Placement("cpu", "float32", "none")
            else _load_weights(hf_dir, placement)
        )
    except ModelLoadError as exc:
        if source.kind == "hf":
            raise
        raise ModelLoadError(
            f"{exc.user_message} If the converted cache is damaged, delete {hf_dir}; "
            "the next load rebuilds it."
        ) from exc
    except Exception as exc:  # the tokenizer or config files of the cache are unreadable
        raise ModelLoadError(f"Reading the tokenizer or config in {hf_dir} failed: {exc}") from exc
    window = getattr(model.config, "max_position_embeddings", None) or settings.context_tokens
    elapsed = time.monotonic() - started
    log.info(
        "loaded %s (%s) on %s as %s in %.1f s",
        source.name,
        hf_dir,
        placement.device,
        placement.label,
        elapsed,
    )
    return LoadedModel(
        name=source.name,
        hf=model,
        tokenizer=tokenizer,
        device=placement.device,
        dtype=placement.label,
        context_tokens=int(window),
        path=str(hf_dir),
        load_s=elapsed,
    )


CacheKey = tuple[str, str, str, str]


class ModelCache:
    """Loaded models shared within one process, keyed by (weights path, device, dtype, quant).

    Owned by `Services` (no hidden global). Thread-safe: the engine thread and others may load
    at once; each key has its own lock, so a slow load of one model doesn't block another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[CacheKey, LoadedModel] = {}
        self._key_locks: dict[CacheKey, threading.Lock] = {}

    def load(self, spec: str, settings: Settings) -> LoadedModel:
        """Same as `load_model(spec, settings, cache=self)`."""
        return load_model(spec, settings, cache=self)

    def get_or_load(self, key: CacheKey, loader: Callable[[], LoadedModel]) -> LoadedModel:
        """The model cached under `key`, calling `loader` once (per key) to load it."""
        with self._lock:
            if key in self._models:
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:  # loaded by another thread while we waited
                    return self._models[key]
            loaded = loader()
            with self._lock:
                self._models[key] = loaded
        return loaded

    def loaded(self) -> tuple[LoadedModel, ...]:
        with self._lock:
            return tuple(self._models.values())

    def clear(self) -> None:
        """Forget every model (memory is freed once no one else holds them)."""
        with self._lock:
            self._models.clear()


def load_model(spec: str, settings: Settings, cache: ModelCache | None = None) -> LoadedModel:
    """Load `spec` (preset name, HF directory or .gguf path) as `settings` say; slow, sync.

    With `cache`, a model already loaded in this process with the same placement is returned
    as is. Every failure is a ModelLoadError whose message names what was tried.
    """
    force_offline_hub()
    placement = resolve_placement(settings)
    source = resolve_source(spec, settings.data_dir)
    if cache is None:
        return _load(source, placement, settings)
    key = (source.key, placement.device, placement.dtype, placement.quantization)
    return cache.get_or_load(key, lambda: _load(source, placement, settings))
