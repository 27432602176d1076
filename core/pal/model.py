"""Which model writes PAL programs: `GURU_CALC_MODEL`, else the strongest installed code model.

Why a separate choice from GURU_MODEL: the chat core is tuned for speed (SmolLM2-135M scores
0/12 on PAL), while a code model scores 9/12 (0.5B) or 11/12 (1.5B) (../shared/MODELS.md §1-3).
"""

from __future__ import annotations

import logging

from core.config import Settings
from core.llm.presets import PRESETS, preset_status

__all__ = ["CODE_PRESETS", "calc_model_spec", "installed_preset"]

log = logging.getLogger(__name__)

# Strongest first (measured PAL quality, MODELS.md): the first installed one is the default.
CODE_PRESETS: tuple[str, ...] = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")


def installed_preset(name: str, data_dir: str) -> bool:
    """True when the preset can be loaded without installing anything (packages or .gguf)."""
    status = preset_status(PRESETS[name], data_dir)
    return status.converted or status.gguf_present or status.packages_installed


def calc_model_spec(settings: Settings) -> str | None:
    """The model spec for /calc; None means "use the core LLM as it is" (local or remote)."""
    if settings.calc_model:
        return settings.calc_model
    if settings.llm_url:
        return None  # a remote server is the operator's choice of model; don't load a local one
    for name in CODE_PRESETS:
        if name in PRESETS and installed_preset(name, settings.data_dir):
            return name
    log.info("no code model installed (`guru models install qwen2.5-coder-0.5b`); "
             "/calc uses the core model %s", settings.model)
    return None
