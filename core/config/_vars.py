"""The parts every settings section uses: `Var` (one documented environment variable), `env()`
(a field's variable), the value parsers, the choices, and the process-wide helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["Var", "env", "force_offline_hub", "load_env_file"]

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit", "8bit")
ENGINE_KERNELS = ("lean", "hf")
ENGINE_WEIGHTS = ("auto", "dense", "int4")
# native kernel variants, best first: core/llm/engine/native/isa.py
ENGINE_ISAS = ("auto", "avx512vnni", "avx512bf16", "avx2vnni", "avx2", "portable")
SANDBOX_WAIVABLE = ("cgroup", "seccomp")  # core/sandbox/probe.py WAIVERS


def force_offline_hub() -> None:
    """Keep transformers and huggingface_hub off any model hub, in this process and its
    children: weights come from local files and packages only. Forced, not defaulted; call it
    before transformers is first imported (logging setup, model conversion, the encoder)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def default_data_dir() -> str:
    return platformdirs.user_data_dir("guru", appauthor=False)


def threads_auto() -> int:
    # One core stays free for the event loop, Postgres and the embedder: two OpenMP threads
    # on a busy 2-core host collapse ~50x (../shared/ENGINE_FACTS.md, "Contention").
    return max(1, (os.cpu_count() or 1) - 1)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port (1-65535)")
    return value


def flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def sandbox_layers(text: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip().lower() for n in text.split(",") if n.strip()}))
    unknown = [n for n in names if n not in SANDBOX_WAIVABLE]
    if unknown:
        raise ValueError(f"unknown layer {', '.join(unknown)}; allowed: cgroup, seccomp")
    return names


def calc_samples(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 16:  # core.pal.result.MAX_SAMPLES (not imported: pal imports config)
        raise ValueError("must be between 1 and 16")
    return value


def threads(text: str) -> int:
    return threads_auto() if text == "auto" else positive_int(text)


def path(text: str) -> str:
    return str(Path(text).expanduser())


def path_or_off(text: str) -> str:
    """A path (~ expanded), or "off"."""
    return "off" if text.strip().lower() == "off" else path(text)


@dataclass(frozen=True)
class Var:
    """One documented environment variable: `Settings.<attr>` parsed from `name`."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    secret: bool = False
    shown: str | None = None  # the documented default when the field's default is computed
    attr: str = ""  # filled in from the field
    default: str | None = None  # the field's default as the README shows it (None: unset)


def env(
    name: str,
    help: str,
    *,
    parse: Callable[[str], Any] = str,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    shown: str | None = None,
) -> dict[str, Var]:
    """A Settings field's metadata: the environment variable that sets it."""
    return {"env": Var(name, help, parse, choices, secret, shown)}


def load_env_file(path: str | None) -> dict[str, str]:
    """Values of a dotenv file, or {} when there is none. Real env vars win over it."""
    if not path or not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
