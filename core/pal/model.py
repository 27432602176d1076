"""Which model writes PAL programs: `GURU_CALC_MODEL`, else the strongest installed code model.

Why a separate choice from GURU_MODEL: the chat core is tuned for speed (SmolLM2-135M scores
0/12 on PAL), while a code model scores 9/12 (0.5B) or 11/12 (1.5B) (../shared/MODELS.md §1-3).
"""

from __future__ import annotations

import asyncio
import logging

from core.config import Settings
from core.errors import GuruError
from core.llm.backend import open_llm
from core.llm.models.loading import ModelCache, load_model
from core.llm.models.presets import PRESETS, preset_status
from core.llm.models.sources import resolve_source
from core.llm.types import LLMBackend

__all__ = [
    "CODE_PRESETS",
    "STRONG_CALC_RAM_GIB",
    "calc_install_choice",
    "calc_model_spec",
    "installed_preset",
    "open_calc_llm",
]

log = logging.getLogger(__name__)

# Strongest first (measured PAL quality, MODELS.md): the first installed one is the default.
CODE_PRESETS: tuple[str, ...] = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")


# Host memory from which setup also installs the strongest code preset for /calc: its first
# load converts the GGUF through fp32 once (~8 GB peak for Qwen2.5-Coder-1.5B), and serving it
# beside the chat model keeps ~2 GB more resident. PAL + self-consistency on GSM8K (README,
# /calc): 64% of problems 0-49 with the 1.5B, 30% of 0-99 with the 0.5B.
STRONG_CALC_RAM_GIB = 16


def calc_install_choice(settings: Settings, ram_gib: float) -> tuple[str | None, str]:
    """The code preset setup installs for /calc on a host with `ram_gib` of memory, and why
    (None: nothing to install)."""
    if settings.calc_model:
        if settings.calc_model in PRESETS:
            return settings.calc_model, "GURU_CALC_MODEL names it"
        return None, f"GURU_CALC_MODEL={settings.calc_model} is not a preset"
    if settings.llm_url:
        return None, "GURU_LLM_URL is set: /calc uses the remote model"
    strongest = CODE_PRESETS[0]
    if ram_gib >= STRONG_CALC_RAM_GIB:
        return strongest, f"the strongest code preset ({ram_gib:.0f} GiB of memory here)"
    return None, (
        f"{strongest} needs {STRONG_CALC_RAM_GIB} GiB of memory to install (this host: "
        f"{ram_gib:.0f} GiB); /calc uses {next(iter(CODE_PRESETS[1:]), settings.model)} if "
        "installed, else the chat model"
    )


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
    log.info(
        "no code model installed (`guru models install qwen2.5-coder-0.5b`); "
        "/calc uses the core model %s",
        settings.model,
    )
    return None


async def open_calc_llm(
    settings: Settings, models: ModelCache, core_llm: LLMBackend | None
) -> LLMBackend:
    """The backend that writes programs: `core_llm` itself when it is the same model, else
    a second Engine (sharing weights through `models` when the same files are loaded)."""
    spec = calc_model_spec(settings)
    if spec is None or _same_model(spec, settings):
        return core_llm if core_llm is not None else await open_llm(settings, models)
    from core.llm.engine.engine import Engine

    loaded = await asyncio.to_thread(load_model, spec, settings, models)
    log.info("calc model %s loaded on %s in %.1f s", loaded.name, loaded.device, loaded.load_s)
    return Engine.from_settings(loaded, settings)


def _same_model(spec: str, settings: Settings) -> bool:
    if settings.llm_url:
        return False  # the core LLM is remote; a local calc model is a different one
    try:
        mine = resolve_source(spec, settings.data_dir).key
        core = resolve_source(settings.model, settings.data_dir).key
    except GuruError:
        return False  # let the load report the real problem with the calc model
    return mine == core
