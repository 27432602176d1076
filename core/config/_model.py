"""The model: which one, where it runs, how the engine batches and samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config._vars import (
    DEVICES,
    DTYPES,
    ENGINE_ISAS,
    ENGINE_KERNELS,
    ENGINE_WEIGHTS,
    QUANTIZATIONS,
    calc_samples,
    env,
    non_negative_float,
    path_or_off,
    positive_int,
    threads,
    threads_auto,
)

__all__ = ["ModelSettings", "DEFAULT_MODEL"]

# The most correct preset within /ask's latency target on a 2-core CPU (bench/answer_eval:
# Qwen2.5-Coder-0.5B states the fact as often as SmolLM2-135M on Emberfall with a sixth of the
# confident errors, six times as often on git-doc; p50 3.1 s on the native kernels).
# SmolLM2-135M stays the bundled model of the tests and the choice for hosts under ~2 GB RAM.
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class ModelSettings:
    """The model: which one, where it runs, how the engine batches and samples."""

    model: str = field(
        default=DEFAULT_MODEL,
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
            "Weights of the lean forward: `auto` packs, for Guru's native decode kernels, the "
            "matrices that are 4-bit GGUF blocks (the bundled Q4_1 model loaded as fp32) "
            "losslessly as 4-bit codes and fp16 scales (Q4_K from its own blocks, scales rounded "
            "to fp16), Q8_0 and Q5_0 matrices (the Qwen2.5 presets) exactly as 8-bit codes with "
            "their fp16 scales, and Q6_K ones as the nearest 8-bit groups (error ~1/8 of its "
            "step, logged); `int4` instead re-quantizes every quantized GGUF type but Q4_1/Q4_K "
            "to 4 bits (faster decode on Qwen, but it did not pass the quality gate reliably). "
            "The kernels (AVX512 or AVX2+FMA+F16C, see GURU_ENGINE_ISA) are built on first use "
            "with the system's C compiler: whole decoder layers per call, an fp16 KV cache; a "
            "4-bit LM head picks each row's top logits, which are recomputed from the dense head; "
            "prompts run in bf16 on AVX512-BF16, fp32 elsewhere (passes `guru bench llm`'s "
            "quality gate); `dense` keeps the loaded weights (fp32 greedy = transformers'). "
            "`auto` falls back to `dense` where no native kernel variant runs or the weights "
            "are not fp32.",
            choices=ENGINE_WEIGHTS,
        ),
    )
    engine_isa: str = field(
        default="auto",
        metadata=env(
            "GURU_ENGINE_ISA",
            "Native kernel variant of the lean forward: `auto` (the best this CPU runs, from its "
            "/proc/cpuinfo flags: `avx512vnni` (int16 activations), else `avx512bf16` (bf16 "
            "activations), else `avx2vnni` (AVX2+FMA+F16C+AVX-VNNI), else `avx2` (AVX2+FMA+F16C), "
            "else `portable`), or one of them forced; `portable` = no native code (dense fp32 "
            "weights through torch). Forcing a variant the CPU lacks is an error at start-up. `guru"
            " models list` shows the choice.",
            choices=ENGINE_ISAS,
        ),
    )
    threads: int = field(
        default_factory=threads_auto,
        metadata=env(
            "GURU_THREADS",
            "Torch threads for inference (`auto` = cores - 1, at least 1).",
            parse=threads,
            shown="auto",
        ),
    )
    max_batch: int = field(
        default=8,
        metadata=env(
            "GURU_MAX_BATCH",
            "Requests decoded together in one step (continuous batching).",
            parse=positive_int,
        ),
    )
    max_queue: int = field(
        default=64,
        metadata=env(
            "GURU_MAX_QUEUE",
            "Waiting requests before new ones get a 'busy' error.",
            parse=positive_int,
        ),
    )
    max_queue_per_guild: int = field(
        default=16,
        metadata=env(
            "GURU_MAX_QUEUE_PER_GUILD",
            "Waiting requests one guild may hold.",
            parse=positive_int,
        ),
    )
    max_new_tokens: int = field(
        default=512,
        metadata=env(
            "GURU_MAX_NEW_TOKENS",
            "Default and upper bound for the answer length in tokens.",
            parse=positive_int,
        ),
    )
    context_tokens: int = field(
        default=4096,
        metadata=env(
            "GURU_CONTEXT_TOKENS",
            "Longest prompt + answer accepted (capped by the model's own window).",
            parse=positive_int,
        ),
    )
    temperature: float = field(
        default=0.7,
        metadata=env(
            "GURU_TEMPERATURE",
            "Default sampling temperature (0 = greedy).",
            parse=non_negative_float,
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
    grounded_adapter: str = field(
        default="off",
        metadata=env(
            "GURU_GROUNDED_ADAPTER",
            "A grounded-answering LoRA adapter for GURU_MODEL (`python -m bench.grounded train` "
            "writes `<data dir>/adapters/_grounded/v<N>`), applied to /ask and /explain of "
            "servers without an active adapter of their own (a server's adapter replaces it); "
            "`off` = none (the default; see README on what it measured).",
            parse=path_or_off,
        ),
    )
    calc_samples: int = field(
        default=3,
        metadata=env(
            "GURU_CALC_SAMPLES",
            "Programs /calc and `guru calc` sample per problem and vote over (self-consistency; "
            "the samples decode together in one engine batch); 1 = one greedy program. "
            "`guru calc --samples K` overrides it.",
            parse=calc_samples,
        ),
    )
