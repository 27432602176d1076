"""LoRA adapters loaded side by side with peft, chosen per request inside one batch.

The base model is built when first needed (the engine's packed path runs without it, see
`core.llm.models.loading.LazyModel`) and wrapped in a `PeftModel` only when the first adapter
arrives. Requests name
their adapter; peft's mixed-batch inference (`adapter_names=`) applies each row's adapter,
with "__base__" for rows that use none. Only the engine thread calls `load`/`unload`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import InvalidInput, NotFound
from core.hf_lock import HF_LOAD_LOCK

__all__ = ["AdapterSet"]

log = logging.getLogger(__name__)
BASE = "__base__"  # peft's name for "no adapter" in adapter_names


class AdapterSet:
    def __init__(self, base_model: Callable[[], Any]) -> None:
        """`base_model`: returns the transformers model (called on first use, once)."""
        self._build_base = base_model
        self._base: Any = None
        self._peft: Any = None  # the PeftModel around the base while adapters are loaded
        self._names: tuple[str, ...] = ()

    @property
    def base_model(self) -> Any:
        if self._base is None:
            self._base = self._build_base()
        return self._base

    @property
    def model(self) -> Any:
        """What the engine calls: the base model, or the PeftModel around it."""
        return self.base_model if self._peft is None else self._peft

    def names(self) -> tuple[str, ...]:
        return self._names

    def load(self, name: str, path: str) -> None:
        from peft import PeftModel

        if not name or name == BASE:
            raise InvalidInput(f"{name!r} is not a valid adapter name.")
        if name in self._names:
            raise InvalidInput(f"An adapter named {name!r} is already loaded.")
        if not os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise NotFound(f"No peft adapter at {path} (adapter_config.json is missing).")
        base = self.base_model  # built outside HF_LOAD_LOCK: building it takes that lock
        with HF_LOAD_LOCK:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(base, path, adapter_name=name)
            else:
                self._peft.load_adapter(path, adapter_name=name)
        self._peft.eval()
        self._names = (*self._names, name)
        log.info("loaded adapter %s from %s", name, path)

    def unload(self, name: str) -> None:
        if name not in self._names:
            raise NotFound(f"The adapter {name!r} is not loaded.")
        self._names = tuple(n for n in self._names if n != name)
        if self._names:
            self._peft.delete_adapter(name)
        else:  # last one gone: unwrap so base requests skip peft's hooks entirely
            self._base, self._peft = self._peft.unload(), None
        log.info("unloaded adapter %s", name)

    def forward_kwargs(self, adapters: Sequence[str | None]) -> dict[str, Any]:
        """Extra forward() arguments selecting each row's adapter."""
        if self._peft is None:
            return {}
        return {"adapter_names": [a or BASE for a in adapters]}
