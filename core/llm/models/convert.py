"""Convert a `.gguf` file once into a safetensors HF directory, so later loads take seconds.

transformers de-quantizes GGUF to fp32 on every load (~20-55 s on 2 cores); the same weights
saved as safetensors reload in 0.4-2 s, bit-identical (../shared/ENGINE_FACTS.md, Notes).
The cache is written to a temp directory and renamed into place, so a killed conversion never
leaves a half-written cache; a marker file records the source's size and mtime, so a changed
source is converted again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.config import force_offline_hub
from core.errors import ModelLoadError
from core.hf_lock import HF_LOAD_LOCK

__all__ = [
    "MARKER",
    "check_gguf_file",
    "cache_is_current",
    "ensure_converted",
    "load_gguf",
]

log = logging.getLogger(__name__)

MARKER = "guru-source.json"
# Bump when the cache layout changes, so old caches are rebuilt instead of misread.
FORMAT_VERSION = 1
GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: Path) -> None:
    """Fail fast, with the path in the message, on a missing, unreadable or non-GGUF file."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise ModelLoadError(f"Model file {path} does not exist.") from None
    except OSError as exc:
        raise ModelLoadError(f"Model file {path} cannot be read ({exc.strerror}).") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"Model file {path} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "it may be corrupt or truncated."
        )


def _fingerprint(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {
        "format": FORMAT_VERSION,
        "source": str(gguf.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def cache_is_current(cache_dir: Path, gguf: Path) -> bool:
    """True when `cache_dir` is a finished conversion of `gguf` as it is now."""
    try:
        recorded = json.loads((cache_dir / MARKER).read_text())
        return recorded == _fingerprint(gguf)
    except (OSError, ValueError):
        return False


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """Load (model, tokenizer) straight from a GGUF file, de-quantized to fp32. Slow."""
    force_offline_hub()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(gguf)
    directory, name = str(gguf.parent), gguf.name
    try:
        with HF_LOAD_LOCK:
            tokenizer = AutoTokenizer.from_pretrained(
                directory, gguf_file=name, local_files_only=True
            )
            model = AutoModelForCausalLM.from_pretrained(
                directory, gguf_file=name, local_files_only=True, dtype=torch.float32
            )
    except Exception as exc:  # transformers raises many types for a bad file; translate here
        raise ModelLoadError(f"Model file {gguf} could not be loaded as GGUF: {exc}") from exc
    return model.eval(), tokenizer


def _save_dequantized(model: Any, tokenizer: Any, dest: Path) -> None:
    """save_pretrained refuses a gguf-"quantized" model; rebuild a plain one sharing its tensors."""
    import torch

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Built on the meta device and filled with assign=True: no second copy of the weights
    # (that would double peak RAM, 7 GB more for the 1.5B model).
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), assign=True, strict=True)
    plain.generation_config = model.generation_config
    plain.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Cross-process lock: two processes converting the same model would waste a minute each."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(dest: Path) -> None:
    """Delete temp/old directories a killed conversion of `dest` left behind (we hold its lock)."""
    for stale in dest.parent.glob(f".{dest.name}.*-*"):
        if stale.is_dir():
            log.info("removing leftover %s from an interrupted conversion", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _swap_in(tmp: Path, dest: Path) -> None:
    """Put `tmp` at `dest` by renames only; a crash in between leaves no half-written `dest`."""
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def ensure_converted(gguf: Path, dest: Path) -> Path:
    """Return `dest`, converting `gguf` into it first unless an up-to-date cache is there."""
    if cache_is_current(dest, gguf):
        return dest
    check_gguf_file(gguf)
    with _exclusive(dest.parent / f".{dest.name}.lock"):
        if cache_is_current(dest, gguf):  # another process finished it while we waited
            return dest
        _remove_leftovers(dest)
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        log.info("converting %s to safetensors in %s (once; about a minute)", gguf, dest)
        try:
            model, tokenizer = load_gguf(gguf)
            log.info("de-quantized in %.1f s; saving", time.monotonic() - started)
            _save_dequantized(model, tokenizer, tmp)
            del model
            (tmp / MARKER).write_text(json.dumps(_fingerprint(gguf), indent=1))
            _swap_in(tmp, dest)
        except ModelLoadError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelLoadError(f"Converting {gguf} to {dest} failed: {exc}") from exc
        log.info("converted %s in %.1f s", gguf.name, time.monotonic() - started)
    return dest
