"""Settings: every environment variable Guru reads, parsed once into a frozen dataclass.

Each setting is written once: a `Settings` field whose default is the default, with its
variable's name, help, parser and choices as the field's metadata (`env(...)`). `VARIABLES` is
derived from the fields; the README's configuration table is generated from it
(`scripts/docs-config`). An invalid value fails at start with a message naming the variable
(`ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import ConfigError

__all__ = ["Settings", "VARIABLES", "force_offline_hub", "load_env_file"]

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit", "8bit")
ENGINE_KERNELS = ("lean", "hf")
ENGINE_WEIGHTS = ("auto", "dense", "int4")
SANDBOX_WAIVABLE = ("cgroup", "seccomp")  # core/sandbox/probe.py WAIVERS


def force_offline_hub() -> None:
    """Keep transformers and huggingface_hub off any model hub, in this process and its
    children: weights come from local files and packages only. Forced, not defaulted; call it
    before transformers is first imported (logging setup, model conversion, the encoder)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _default_data_dir() -> str:
    return platformdirs.user_data_dir("guru", appauthor=False)


def _threads_auto() -> int:
    # One core stays free for the event loop, Postgres and the embedder: two OpenMP threads
    # on a busy 2-core host collapse ~50x (../shared/ENGINE_FACTS.md, "Contention").
    return max(1, (os.cpu_count() or 1) - 1)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be > 0")
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


def _sandbox_layers(text: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip().lower() for n in text.split(",") if n.strip()}))
    unknown = [n for n in names if n not in SANDBOX_WAIVABLE]
    if unknown:
        raise ValueError(f"unknown layer {', '.join(unknown)}; allowed: cgroup, seccomp")
    return names


def _threads(text: str) -> int:
    return _threads_auto() if text == "auto" else _positive_int(text)


def _path(text: str) -> str:
    return str(Path(text).expanduser())


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


@dataclass(frozen=True)
class Settings:
    """Process configuration; build it with `Settings.from_env()` (or directly in tests)."""

    discord_token: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "DISCORD_TOKEN",
            "Bot token; without it `scripts/run` opens `guru chat`.",
            secret=True,
        ),
    )
    database_url: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "DATABASE_URL",
            "External Postgres with pgvector; unset = embedded PostgreSQL 18 under the data dir.",
            secret=True,
        ),
    )
    data_dir: str = field(
        default_factory=_default_data_dir,
        metadata=env(
            "GURU_DATA_DIR",
            "Where Guru keeps its database, converted models and adapters (default: the user data "
            "dir).",
            parse=_path,
            shown=None,
        ),
    )
    model: str = field(
        default="smollm2-135m",
        metadata=env(
            "GURU_MODEL",
            "Chat model: a preset (`guru models list`), a HF-format directory or a `.gguf` file.",
        ),
    )
    llm_url: str | None = field(
        default=None,
        metadata=env(
            "GURU_LLM_URL",
            "OpenAI-compatible server (vLLM, TGI, llama.cpp, `guru serve`); when set, no local "
            "model is loaded.",
        ),
    )
    llm_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "GURU_LLM_API_KEY",
            "Bearer token for GURU_LLM_URL.",
            secret=True,
        ),
    )
    llm_remote_model: str | None = field(
        default=None,
        metadata=env(
            "GURU_LLM_REMOTE_MODEL",
            "Model name sent to GURU_LLM_URL (default: the first of its /v1/models).",
        ),
    )
    device: str = field(
        default="auto",
        metadata=env(
            "GURU_DEVICE",
            "`auto` (CUDA when present), `cpu` or `cuda`.",
            choices=DEVICES,
        ),
    )
    dtype: str = field(
        default="auto",
        metadata=env(
            "GURU_DTYPE",
            "Weights dtype: `auto` (fp32 on CPU, bf16/fp16 on GPU), `float32`, `bfloat16`, "
            "`float16`.",
            choices=DTYPES,
        ),
    )
    quantization: str = field(
        default="none",
        metadata=env(
            "GURU_QUANTIZATION",
            "`4bit` (NF4) or `8bit` through bitsandbytes; needs CUDA.",
            choices=QUANTIZATIONS,
        ),
    )
    engine_kernel: str = field(
        default="lean",
        metadata=env(
            "GURU_ENGINE_KERNEL",
            "Forward pass of the local engine: `lean` (our own Llama/Qwen2 forward on the "
            "engine's KV cache; requests with a LoRA adapter still use transformers') or `hf` "
            "(transformers' forward for everything).",
            choices=ENGINE_KERNELS,
        ),
    )
    engine_weights: str = field(
        default="auto",
        metadata=env(
            "GURU_ENGINE_WEIGHTS",
            "Weights of the lean forward: `int4` packs matrices that are 4-bit GGUF blocks (the "
            "bundled Q4_1 model loaded as fp32) losslessly, codes and fp16 scales, for Guru's "
            "native AVX512-BF16 decode kernels (built on first use with the system's C compiler: "
            "bf16 activations, whole decoder layers per call, an fp16 KV cache; torch's int4 "
            "kernel where they cannot build); a 4-bit LM head picks each row's top logits, which "
            "are recomputed from the dense head; prompts run in bf16 (~8x faster decode, 2x "
            "faster prompts than fp32; passes `guru bench llm`'s quality gate); `dense` keeps the"
            " loaded weights (fp32 greedy = transformers'); `auto` = `int4` on a CPU with "
            "AVX512-BF16 when the weights are fp32, else `dense`.",
            choices=ENGINE_WEIGHTS,
        ),
    )
    threads: int = field(
        default_factory=_threads_auto,
        metadata=env(
            "GURU_THREADS",
            "Torch threads for inference (`auto` = cores - 1, at least 1).",
            parse=_threads,
            shown="auto",
        ),
    )
    max_batch: int = field(
        default=8,
        metadata=env(
            "GURU_MAX_BATCH",
            "Requests decoded together in one step (continuous batching).",
            parse=_positive_int,
        ),
    )
    max_queue: int = field(
        default=64,
        metadata=env(
            "GURU_MAX_QUEUE",
            "Waiting requests before new ones get a 'busy' error.",
            parse=_positive_int,
        ),
    )
    max_queue_per_guild: int = field(
        default=16,
        metadata=env(
            "GURU_MAX_QUEUE_PER_GUILD",
            "Waiting requests one guild may hold.",
            parse=_positive_int,
        ),
    )
    user_requests_per_minute: int = field(
        default=5,
        metadata=env(
            "GURU_USER_REQUESTS_PER_MINUTE",
            "Fair use: /ask, /explain and /calc one person may run per minute in one server (an "
            "/explain heatmap counts as one more); a server's `/settings rate-limit` may only "
            "lower it. 0 = no limit.",
            parse=_non_negative_int,
        ),
    )
    guild_requests_per_minute: int = field(
        default=20,
        metadata=env(
            "GURU_GUILD_REQUESTS_PER_MINUTE",
            "Fair use: the same commands all members of one server together may run per "
            "minute. 0 = no limit.",
            parse=_non_negative_int,
        ),
    )
    tune_starts_per_hour: int = field(
        default=3,
        metadata=env(
            "GURU_TUNE_STARTS_PER_HOUR",
            "Fair use: `/tune start` per server per hour (besides one queued or running job "
            "per server). 0 = no limit.",
            parse=_non_negative_int,
        ),
    )
    max_new_tokens: int = field(
        default=512,
        metadata=env(
            "GURU_MAX_NEW_TOKENS",
            "Default and upper bound for the answer length in tokens.",
            parse=_positive_int,
        ),
    )
    context_tokens: int = field(
        default=4096,
        metadata=env(
            "GURU_CONTEXT_TOKENS",
            "Longest prompt + answer accepted (capped by the model's own window).",
            parse=_positive_int,
        ),
    )
    temperature: float = field(
        default=0.7,
        metadata=env(
            "GURU_TEMPERATURE",
            "Default sampling temperature (0 = greedy).",
            parse=_non_negative_float,
        ),
    )
    serve_host: str = field(
        default="127.0.0.1",
        metadata=env(
            "GURU_SERVE_HOST",
            "Bind address of `guru serve`.",
        ),
    )
    serve_port: int = field(
        default=8088,
        metadata=env(
            "GURU_SERVE_PORT",
            "Port of `guru serve`.",
            parse=_port,
        ),
    )
    serve_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "GURU_SERVE_API_KEY",
            "Bearer token clients of `guru serve` must send; unset = no auth, allowed only on a"
            " loopback GURU_SERVE_HOST.",
            secret=True,
        ),
    )
    discord_api_base: str = field(
        default="https://discord.com/api/v10",
        metadata=env(
            "DISCORD_API_BASE",
            "Discord REST base URL, API version included (a Discord-compatible server or the test "
            "emulator).",
        ),
    )
    discord_gateway_url: str = field(
        default="wss://gateway.discord.gg/",
        metadata=env(
            "DISCORD_GATEWAY_URL",
            "Discord gateway websocket URL; a non-default value also overrides the URL "
            "`/gateway/bot` returns.",
        ),
    )
    dev_guild_id: int | None = field(
        default=None,
        metadata=env(
            "GURU_DEV_GUILD",
            "Sync slash commands to this one guild id only (instant updates while developing); "
            "unset = global sync.",
            parse=_positive_int,
        ),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=env(
            "GURU_METRICS_PORT",
            "Serve Prometheus metrics of the bot on this port; unset = no metrics endpoint.",
            parse=_port,
        ),
    )
    metrics_host: str = field(
        default="127.0.0.1",
        metadata=env(
            "GURU_METRICS_HOST",
            "Bind address of the metrics endpoint (`0.0.0.0` exposes it to the network).",
        ),
    )
    ingest_max_chars: int = field(
        default=1_000_000,
        metadata=env(
            "GURU_INGEST_MAX_CHARS",
            "Characters of text one document may yield; a file with more is refused.",
            parse=_positive_int,
        ),
    )
    ingest_max_doc_chunks: int = field(
        default=1500,
        metadata=env(
            "GURU_INGEST_MAX_DOC_CHUNKS",
            "Chunks one document may have; a longer one is refused.",
            parse=_positive_int,
        ),
    )
    ingest_max_guild_chunks: int = field(
        default=50_000,
        metadata=env(
            "GURU_INGEST_MAX_GUILD_CHUNKS",
            "Chunks one server's documents may hold together; further documents are refused.",
            parse=_positive_int,
        ),
    )
    ingest_max_unzipped_mb: int = field(
        default=64,
        metadata=env(
            "GURU_INGEST_MAX_UNZIPPED_MB",
            "What a .docx (any zip) may unpack to, checked before parsing; >100:1 is a bomb.",
            parse=_positive_int,
        ),
    )
    parse_memory_mb: int = field(
        default=512,
        metadata=env(
            "GURU_PARSE_MEMORY_MB",
            "Address-space limit of the subprocess that parses files from Discord.",
            parse=_positive_int,
        ),
    )
    parse_timeout_s: float = field(
        default=60.0,
        metadata=env(
            "GURU_PARSE_TIMEOUT_S",
            "Wall-clock limit of parsing one file from Discord (seconds).",
            parse=_positive_float,
        ),
    )
    calc_model: str | None = field(
        default=None,
        metadata=env(
            "GURU_CALC_MODEL",
            "Model that writes /calc programs: a preset, HF directory or `.gguf`; unset = the "
            "strongest installed code preset (qwen2.5-coder-1.5b, then -0.5b), else the chat "
            "model.",
        ),
    )
    ask_expand: bool = field(
        default=False,
        metadata=env(
            "GURU_ASK_EXPAND",
            "/ask and `guru ask`: the chat model first writes a short passage answering the "
            "question, and search adds its embedding and its words (query expansion; +1 model "
            "call). Turn on with a model that knows your docs' domain: on Git's docs "
            "Qwen2.5-Coder-1.5B lifts recall@5 from 0.83 to 1.00 (+14 s per question on a 2-core "
            "CPU), SmolLM2-135M drops it to 0.65.",
            parse=_flag,
        ),
    )
    sandbox_timeout_s: float = field(
        default=5.0,
        metadata=env(
            "GURU_SANDBOX_TIMEOUT_S",
            "Wall-clock limit of one sandboxed program (seconds).",
            parse=_non_negative_float,
        ),
    )
    sandbox_memory_mb: int = field(
        default=256,
        metadata=env(
            "GURU_SANDBOX_MEMORY_MB",
            "Memory limit of one whole sandbox (cgroup); each process is also capped at 1 GiB of "
            "address space.",
            parse=_positive_int,
        ),
    )
    sandbox_unsafe_allow_no_isolation: bool = field(
        default=False,
        metadata=env(
            "GURU_SANDBOX_UNSAFE_ALLOW_NO_ISOLATION",
            "UNSAFE: run model-written code without bubblewrap isolation when it is unavailable, "
            "instead of refusing. Refused when the bot runs as root.",
            parse=_flag,
        ),
    )
    sandbox_allow_missing: tuple[str, ...] = field(
        default=(),
        metadata=env(
            "GURU_SANDBOX_ALLOW_MISSING",
            "UNSAFE: comma list of required sandbox layers to run without when the host lacks "
            "them, instead of refusing: `cgroup` (memory and pids limits), `seccomp` (in root "
            "mode also the only block on user namespaces). Logged as a warning at start.",
            parse=_sandbox_layers,
        ),
    )
    sources_max_pages: int = field(
        default=500,
        metadata=env(
            "GURU_SOURCES_MAX_PAGES",
            "Pages (or files) one website or git source may have; a sync stops fetching there.",
            parse=_positive_int,
        ),
    )
    sources_page_max_mb: float = field(
        default=5.0,
        metadata=env(
            "GURU_SOURCES_PAGE_MAX_MB",
            "Largest web page or repository file a source sync reads (MB); a bigger one fails "
            "alone.",
            parse=_non_negative_float,
        ),
    )
    sources_timeout_s: float = field(
        default=20.0,
        metadata=env(
            "GURU_SOURCES_TIMEOUT_S",
            "Time limit of one web request of a source sync (seconds).",
            parse=_non_negative_float,
        ),
    )
    sources_allow_private: bool = field(
        default=False,
        metadata=env(
            "GURU_SOURCES_ALLOW_PRIVATE",
            "Let `/docs add url` fetch hosts on loopback or private networks (an intranet wiki); "
            "off, only public addresses (the CLI may always).",
            parse=_flag,
        ),
    )
    log_level: str = field(
        default="INFO",
        metadata=env(
            "GURU_LOG_LEVEL",
            "Python logging level.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
    )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, env_file: str | None = ".env"
    ) -> Settings:
        """Parse `env` (default: os.environ over `.env`); ConfigError names every bad variable."""
        if env is None:
            env = {**load_env_file(env_file), **os.environ}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = env.get(var.name)
            if raw is None or raw.strip() == "":
                continue  # the field's default
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


def _documented(value: Any) -> str | None:
    if value is None or value == ():
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _variables() -> tuple[Var, ...]:
    found = []
    for f in fields(Settings):
        var = f.metadata["env"]
        default = var.shown if f.default is MISSING else _documented(f.default)
        found.append(Var(**{**var.__dict__, "attr": f.name, "default": default}))
    return tuple(found)


# Every variable Guru reads, in the README's order.
VARIABLES: tuple[Var, ...] = _variables()


def load_env_file(path: str | None) -> dict[str, str]:
    """Values of a dotenv file, or {} when there is none. Real env vars win over it."""
    if not path or not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
