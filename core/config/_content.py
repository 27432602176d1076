"""What Guru reads and runs: documents, sources, answers, the code sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config._vars import (
    env,
    flag,
    non_negative_float,
    positive_float,
    positive_int,
    sandbox_layers,
)

__all__ = ["ContentSettings"]


@dataclass(frozen=True)
class ContentSettings:
    """What Guru reads and runs: documents, sources, answers, the code sandbox."""

    ask_expand: bool = field(
        default=False,
        metadata=env(
            "GURU_ASK_EXPAND",
            "/ask and `guru ask`: the chat model first writes a short passage answering the "
            "question, and search adds its embedding and its words (query expansion; +1 model "
            "call). Turn on with a model that knows your docs' domain: on Git's docs "
            "Qwen2.5-Coder-1.5B lifts recall@5 from 0.83 to 1.00 (+14 s per question on a 2-core "
            "CPU), SmolLM2-135M drops it to 0.65.",
            parse=flag,
        ),
    )
    ingest_max_chars: int = field(
        default=1_000_000,
        metadata=env(
            "GURU_INGEST_MAX_CHARS",
            "Characters of text one document may yield; a file with more is refused.",
            parse=positive_int,
        ),
    )
    ingest_max_doc_chunks: int = field(
        default=1500,
        metadata=env(
            "GURU_INGEST_MAX_DOC_CHUNKS",
            "Chunks one document may have; a longer one is refused.",
            parse=positive_int,
        ),
    )
    ingest_max_guild_chunks: int = field(
        default=50_000,
        metadata=env(
            "GURU_INGEST_MAX_GUILD_CHUNKS",
            "Chunks one server's documents may hold together; further documents are refused.",
            parse=positive_int,
        ),
    )
    ingest_max_unzipped_mb: int = field(
        default=64,
        metadata=env(
            "GURU_INGEST_MAX_UNZIPPED_MB",
            "What a .docx (any zip) may unpack to, checked before parsing; >100:1 is a bomb.",
            parse=positive_int,
        ),
    )
    parse_memory_mb: int = field(
        default=512,
        metadata=env(
            "GURU_PARSE_MEMORY_MB",
            "Address-space limit of the subprocess that parses files from Discord.",
            parse=positive_int,
        ),
    )
    parse_timeout_s: float = field(
        default=60.0,
        metadata=env(
            "GURU_PARSE_TIMEOUT_S",
            "Wall-clock limit of parsing one file from Discord (seconds).",
            parse=positive_float,
        ),
    )
    sources_max_pages: int = field(
        default=500,
        metadata=env(
            "GURU_SOURCES_MAX_PAGES",
            "Pages (or files) one website or git source may have; a sync stops fetching there.",
            parse=positive_int,
        ),
    )
    sources_page_max_mb: float = field(
        default=5.0,
        metadata=env(
            "GURU_SOURCES_PAGE_MAX_MB",
            "Largest web page or repository file a source sync reads (MB); a bigger one fails "
            "alone.",
            parse=non_negative_float,
        ),
    )
    sources_timeout_s: float = field(
        default=20.0,
        metadata=env(
            "GURU_SOURCES_TIMEOUT_S",
            "Time limit of one web request of a source sync (seconds).",
            parse=non_negative_float,
        ),
    )
    sources_allow_private: bool = field(
        default=False,
        metadata=env(
            "GURU_SOURCES_ALLOW_PRIVATE",
            "Let `/docs add url` fetch hosts on loopback or private networks (an intranet wiki); "
            "off, only public addresses (the CLI may always).",
            parse=flag,
        ),
    )
    sandbox_timeout_s: float = field(
        default=5.0,
        metadata=env(
            "GURU_SANDBOX_TIMEOUT_S",
            "Wall-clock limit of one sandboxed program (seconds).",
            parse=non_negative_float,
        ),
    )
    sandbox_memory_mb: int = field(
        default=256,
        metadata=env(
            "GURU_SANDBOX_MEMORY_MB",
            "Memory limit of one whole sandbox (cgroup); each process is also capped at 1 GiB of "
            "address space.",
            parse=positive_int,
        ),
    )
    sandbox_unsafe_allow_no_isolation: bool = field(
        default=False,
        metadata=env(
            "GURU_SANDBOX_UNSAFE_ALLOW_NO_ISOLATION",
            "UNSAFE: run model-written code without bubblewrap isolation when it is unavailable, "
            "instead of refusing. Refused when the bot runs as root.",
            parse=flag,
        ),
    )
    sandbox_allow_missing: tuple[str, ...] = field(
        default=(),
        metadata=env(
            "GURU_SANDBOX_ALLOW_MISSING",
            "UNSAFE: comma list of required sandbox layers to run without when the host lacks "
            "them, instead of refusing: `cgroup` (memory and pids limits), `seccomp` (in root "
            "mode also the only block on user namespaces). Logged as a warning at start.",
            parse=sandbox_layers,
        ),
    )
