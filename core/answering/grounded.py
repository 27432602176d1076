"""The shipped grounded-answering adapter (`GURU_GROUNDED_ADAPTER`): which folder, and may it
serve the loaded model.

It is trained once for the default model (bench/grounded: RAFT-style, on the answering prompt
itself) and lives outside every guild, under `<data dir>/adapters/_grounded/v<N>/`. A guild's
own active adapter REPLACES it rather than stacking: the engine applies exactly one peft
adapter per request (mixed batches stay exact), and a guild's adapter is trained on the base
model, not on base + grounded adapter, so stacking them would serve weights nobody trained.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

__all__ = ["ENGINE_NAME", "METADATA_FILE", "GroundedAdapter", "grounded_root", "resolve"]

log = logging.getLogger(__name__)

ENGINE_NAME = "grounded"  # guild adapters are "g<guild>-v<n>": no clash
METADATA_FILE = "grounded.json"


def grounded_root(data_dir: str | Path) -> Path:
    return Path(data_dir) / "adapters" / "_grounded"


class GroundedAdapter:
    """Where the configured adapter is, or why it does not serve (logged once by the caller)."""

    def __init__(self, path: str, adapter_dir: Path | None, problem: str | None) -> None:
        self.path, self.adapter_dir, self.problem = path, adapter_dir, problem


def resolve(setting: str, serving_model: str) -> GroundedAdapter | None:
    """The adapter of `GURU_GROUNDED_ADAPTER` (`setting`) for `serving_model`; None when off.

    `setting` is a version folder (with `adapter/` and grounded.json) or a peft adapter folder.
    An adapter trained on another preset is refused with the reason (its layers do not fit)."""
    from core.llm.models.presets import PRESETS

    if not setting or setting == "off":
        return None
    root = Path(setting)
    adapter_dir = root / "adapter" if (root / "adapter" / "adapter_config.json").is_file() else root
    if not (adapter_dir / "adapter_config.json").is_file():
        return GroundedAdapter(setting, None, f"no peft adapter at {setting}")
    meta_path = root / METADATA_FILE
    if meta_path.is_file():
        trained = json.loads(meta_path.read_text(encoding="utf-8")).get("base_model")
        if trained in PRESETS and serving_model in PRESETS and trained != serving_model:
            problem = f"it was trained on {trained}, but the model is {serving_model}"
            return GroundedAdapter(setting, None, problem)
    return GroundedAdapter(setting, adapter_dir, None)
