"""Settings: every environment variable Guru reads, parsed once into a frozen dataclass.

The README's configuration table is the user-facing copy of `VARIABLES`; keep them in step.
An invalid value fails at start with a message naming the variable (`ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import ConfigError

__all__ = ["Settings", "VARIABLES", "load_env_file"]

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit", "8bit")
ENGINE_KERNELS = ("lean", "hf")
ENGINE_WEIGHTS = ("auto", "dense", "int4")


def _default_data_dir() -> str:
    return platformdirs.user_data_dir("guru", appauthor=False)


def _threads_auto() -> int:
    # One core stays free for the event loop, Postgres and the embedder: two OpenMP threads
    # on a busy 2-core host collapse ~50x (../shared/ENGINE_FACTS.md, "Contention").
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass(frozen=True)
class Var:
    """One documented environment variable."""

    name: str
    attr: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    secret: bool = False


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _calc_samples(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 16:  # core.pal.result.MAX_SAMPLES (not imported: pal imports config)
        raise ValueError("must be between 1 and 16")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port (1-65535)")
    return value


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _threads(text: str) -> int:
    return _threads_auto() if text == "auto" else _positive_int(text)


VARIABLES: tuple[Var, ...] = (
    Var(
        "DISCORD_TOKEN",
        "discord_token",
        None,
        "Bot token; without it `scripts/run` opens `guru chat`.",
        secret=True,
    ),
    Var(
        "DATABASE_URL",
        "database_url",
        None,
        "External Postgres with pgvector; unset = embedded PostgreSQL 18 under the data dir.",
        secret=True,
    ),
    Var(
        "GURU_DATA_DIR",
        "data_dir",
        None,
        "Where Guru keeps its database, converted models and adapters (default: the user data dir).",
        parse=lambda s: str(Path(s).expanduser()),
    ),
    Var(
        "GURU_MODEL",
        "model",
        "smollm2-135m",
        "Chat model: a preset (`guru models list`), a HF-format directory or a `.gguf` file.",
    ),
    Var(
        "GURU_LLM_URL",
        "llm_url",
        None,
        "OpenAI-compatible server (vLLM, TGI, llama.cpp, `guru serve`); when set, no local model is loaded.",
    ),
    Var("GURU_LLM_API_KEY", "llm_api_key", None, "Bearer token for GURU_LLM_URL.", secret=True),
    Var(
        "GURU_LLM_REMOTE_MODEL",
        "llm_remote_model",
        None,
        "Model name sent to GURU_LLM_URL (default: the first of its /v1/models).",
    ),
    Var(
        "GURU_DEVICE",
        "device",
        "auto",
        "`auto` (CUDA when present), `cpu` or `cuda`.",
        choices=DEVICES,
    ),
    Var(
        "GURU_DTYPE",
        "dtype",
        "auto",
        "Weights dtype: `auto` (fp32 on CPU, bf16/fp16 on GPU), `float32`, `bfloat16`, `float16`.",
        choices=DTYPES,
    ),
    Var(
        "GURU_QUANTIZATION",
        "quantization",
        "none",
        "`4bit` (NF4) or `8bit` through bitsandbytes; needs CUDA.",
        choices=QUANTIZATIONS,
    ),
    Var(
        "GURU_ENGINE_KERNEL",
        "engine_kernel",
        "lean",
        "Forward pass of the local engine: `lean` (our own Llama/Qwen2 forward on the engine's KV cache; requests with a LoRA adapter still use transformers') or `hf` (transformers' forward for everything).",
        choices=ENGINE_KERNELS,
    ),
    Var(
        "GURU_ENGINE_WEIGHTS",
        "engine_weights",
        "auto",
        "Weights of the lean forward: `int4` packs matrices that are 4-bit GGUF blocks (the bundled Q4_1 model loaded as fp32) losslessly, codes and fp16 scales, for Guru's native AVX512-BF16 decode kernels (built on first use with the system's C compiler: bf16 activations, whole decoder layers per call, an fp16 KV cache; torch's int4 kernel where they cannot build); a 4-bit LM head picks each row's top logits, which are recomputed from the dense head; prompts run in bf16 (~8x faster decode, 2x faster prompts than fp32; passes `guru bench llm`'s quality gate); `dense` keeps the loaded weights (fp32 greedy = transformers'); `auto` = `int4` on a CPU with AVX512-BF16 when the weights are fp32, else `dense`.",
        choices=ENGINE_WEIGHTS,
    ),
    Var(
        "GURU_THREADS",
        "threads",
        "auto",
        "Torch threads for inference (`auto` = cores - 1, at least 1).",
        parse=_threads,
    ),
    Var(
        "GURU_MAX_BATCH",
        "max_batch",
        "8",
        "Requests decoded together in one step (continuous batching).",
        parse=_positive_int,
    ),
    Var(
        "GURU_MAX_QUEUE",
        "max_queue",
        "64",
        "Waiting requests before new ones get a 'busy' error.",
        parse=_positive_int,
    ),
    Var(
        "GURU_MAX_QUEUE_PER_GUILD",
        "max_queue_per_guild",
        "16",
        "Waiting requests one guild may hold.",
        parse=_positive_int,
    ),
    Var(
        "GURU_MAX_NEW_TOKENS",
        "max_new_tokens",
        "512",
        "Default and upper bound for the answer length in tokens.",
        parse=_positive_int,
    ),
    Var(
        "GURU_CONTEXT_TOKENS",
        "context_tokens",
        "4096",
        "Longest prompt + answer accepted (capped by the model's own window).",
        parse=_positive_int,
    ),
    Var(
        "GURU_TEMPERATURE",
        "temperature",
        "0.7",
        "Default sampling temperature (0 = greedy).",
        parse=_non_negative_float,
    ),
    Var("GURU_SERVE_HOST", "serve_host", "127.0.0.1", "Bind address of `guru serve`."),
    Var("GURU_SERVE_PORT", "serve_port", "8088", "Port of `guru serve`.", parse=_port),
    Var(
        "GURU_SERVE_API_KEY",
        "serve_api_key",
        None,
        "Bearer token clients of `guru serve` must send; unset = no auth.",
        secret=True,
    ),
    Var(
        "DISCORD_API_BASE",
        "discord_api_base",
        "https://discord.com/api/v10",
        "Discord REST base URL, API version included (a Discord-compatible server or the test emulator).",
    ),
    Var(
        "DISCORD_GATEWAY_URL",
        "discord_gateway_url",
        "wss://gateway.discord.gg/",
        "Discord gateway websocket URL; a non-default value also overrides the URL `/gateway/bot` returns.",
    ),
    Var(
        "GURU_DEV_GUILD",
        "dev_guild_id",
        None,
        "Sync slash commands to this one guild id only (instant updates while developing); unset = global sync.",
        parse=_positive_int,
    ),
    Var(
        "GURU_METRICS_PORT",
        "metrics_port",
        None,
        "Serve Prometheus metrics of the bot on this port; unset = no metrics endpoint.",
        parse=_port,
    ),
    Var(
        "GURU_CALC_MODEL",
        "calc_model",
        None,
        "Model that writes /calc programs: a preset, HF directory or `.gguf`; unset = the strongest installed code preset (qwen2.5-coder-1.5b, then -0.5b), else the chat model.",
    ),
    Var(
        "GURU_CALC_SAMPLES",
        "calc_samples",
        "3",
        "Programs /calc and `guru calc` sample per problem and vote over (self-consistency; "
        "the samples decode together in one engine batch); 1 = one greedy program. "
        "`guru calc --samples K` overrides it.",
        parse=_calc_samples,
    ),
    Var(
        "GURU_ASK_EXPAND",
        "ask_expand",
        "false",
        "/ask and `guru ask`: the chat model first writes a short passage answering the question, and search adds its embedding and its words (query expansion; +1 model call). Turn on with a model that knows your docs' domain: on Git's docs Qwen2.5-Coder-1.5B lifts recall@5 from 0.83 to 1.00 (+14 s per question on a 2-core CPU), SmolLM2-135M drops it to 0.65.",
        parse=_flag,
    ),
    Var(
        "GURU_SANDBOX_TIMEOUT_S",
        "sandbox_timeout_s",
        "5",
        "Wall-clock limit of one sandboxed program (seconds).",
        parse=_non_negative_float,
    ),
    Var(
        "GURU_SANDBOX_MEMORY_MB",
        "sandbox_memory_mb",
        "256",
        "Memory limit of one whole sandbox (cgroup); each process is also capped at 1 GiB of address space.",
        parse=_positive_int,
    ),
    Var(
        "GURU_SANDBOX_UNSAFE_ALLOW_NO_ISOLATION",
        "sandbox_unsafe_allow_no_isolation",
        "false",
        "UNSAFE: run model-written code without bubblewrap isolation when it is unavailable, instead of refusing.",
        parse=_flag,
    ),
    Var(
        "GURU_LOG_LEVEL",
        "log_level",
        "INFO",
        "Python logging level.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)


@dataclass(frozen=True)
class Settings:
    """Process configuration; build it with `Settings.from_env()` (or directly in tests)."""

    discord_token: str | None = field(default=None, repr=False)
    database_url: str | None = field(default=None, repr=False)
    data_dir: str = field(default_factory=_default_data_dir)
    model: str = "smollm2-135m"
    llm_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    llm_remote_model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    engine_kernel: str = "lean"
    engine_weights: str = "auto"
    threads: int = field(default_factory=_threads_auto)
    max_batch: int = 8
    max_queue: int = 64
    max_queue_per_guild: int = 16
    max_new_tokens: int = 512
    context_tokens: int = 4096
    temperature: float = 0.7
    serve_host: str = "127.0.0.1"
    serve_port: int = 8088
    serve_api_key: str | None = field(default=None, repr=False)
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    dev_guild_id: int | None = None
    metrics_port: int | None = None
    calc_model: str | None = None
    calc_samples: int = 3
    ask_expand: bool = False
    sandbox_timeout_s: float = 5.0
    sandbox_memory_mb: int = 256
    sandbox_unsafe_allow_no_isolation: bool = False
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, env_file: str | None = ".env"
    ) -> Settings:
        """Read `env` (default: os.environ over an optional `.env`); raise ConfigError naming bad vars."""
        if env is None:
            env = {**load_env_file(env_file), **os.environ}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = env.get(var.name)
            if raw is None or raw.strip() == "":
                if var.default is None:
                    continue
                raw = var.default
            raw = raw.strip()
            if var.choices and raw not in var.choices:
                problems.append(f"{var.name}={raw!r} is not one of: {', '.join(var.choices)}")
                continue
            try:
                values[var.attr] = var.parse(raw)
            except ValueError as exc:
                problems.append(f"{var.name}={raw!r} is invalid ({exc})")
        if problems:
            raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".")
        return cls(**values)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def describe(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked (for `guru config` and logs)."""
        secret = {v.attr for v in VARIABLES if v.secret}
        return {
            f.name: ("***" if f.name in secret and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }


def load_env_file(path: str | None) -> dict[str, str]:
    """Values of a dotenv file, or {} when there is none. Real env vars win over it."""
    if not path or not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
