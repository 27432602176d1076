"""LoRA adapters loaded side by side with peft, chosen per request inside one batch.

The base model is wrapped in a `PeftModel` only when the first adapter arrives. Requests name
their adapter; peft's mixed-batch inference (`adapter_names=`) applies each row's adapter,
with "__base__" for rows that use none. Only the engine thread calls `load`/`unload`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from core.errors import InvalidInput, NotFound
from core.hf_lock import HF_LOAD_LOCK

__all__ = ["AdapterSet"]

log = logging.getLogger(__name__)
BASE = "__base__"  # peft's name for "no adapter" in adapter_names


class AdapterSet:
    def __init__(self, base_model: Any) -> None:
        self.base_model = base_model
        self.model = base_model  # what the engine calls: base, or the PeftModel around it
        self._names: tuple[str, ...] = ()

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
        with HF_LOAD_LOCK:
            if self.model is self.base_model:
                self.model = PeftModel.from_pretrained(self.base_model, path, adapter_name=name)
            else:
                self.model.load_adapter(path, adapter_name=name)
        self.model.eval()
        self._names = (*self._names, name)
        log.info("loaded adapter %s from %s", name, path)

    def unload(self, name: str) -> None:
        if name not in self._names:
            raise NotFound(f"The adapter {name!r} is not loaded.")
        self._names = tuple(n for n in self._names if n != name)
        if self._names:
            self.model.delete_adapter(name)
        else:  # last one gone: unwrap so base requests skip peft's hooks entirely
            self.model = self.model.unload()
            self.base_model = self.model
        log.info("unloaded adapter %s", name)

    def forward_kwargs(self, adapters: Sequence[str | None]) -> dict[str, Any]:
        """Extra forward() arguments selecting each row's adapter."""
        if self.model is self.base_model:
            return {}
        return {"adapter_names": [a or BASE for a in adapters]}
