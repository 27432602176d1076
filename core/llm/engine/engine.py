"""The engine: the only owner of the model. Continuous batching on one worker thread.

The event loop only queues requests and reads events; torch and the tokenizer run on the
engine thread (or `asyncio.to_thread` for prompt encoding). Each loop turn of that thread:
1) run pending commands (load/unload LoRA adapters) between steps;
2) admit waiting requests into free batch slots in fair per-guild order, prefilling them
   together (one pass over the weights for all of their prompts);
3) one decode step for every active sequence, in one forward pass (mixed adapters allowed);
4) drop finished and cancelled sequences, freeing their slots for the next turn.

Two kernels run the model: the lean forward (`core.llm.engine.lean`, default) for every step whose
rows use no LoRA adapter, and transformers' own forward (with peft) for steps that do. Both
read and write the same KV buffers, so a batch can switch between them from one step to the
next and stays correct.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import torch

from core.errors import GuruError, InvalidInput, NotFound
from core.llm.engine import native
from core.llm.engine.adapters import AdapterSet
from core.llm.engine.batch import ActiveBatch
from core.llm.engine.job import Job
from core.llm.engine.lean import LeanLlama, lean_unsupported
from core.llm.engine.prompting import PromptEncoder
from core.llm.engine.sampling import TextStream, TokenChooser
from core.llm.engine.scheduler import FairQueue
from core.llm.models.loading import LoadedModel
from core.llm.models.weights import ModelWeights
from core.llm.types import BackendStats, Completion, Request, StreamEvent

if TYPE_CHECKING:
    from core.config import Settings

__all__ = ["Engine"]

log = logging.getLogger(__name__)
LOCAL_LANE = "local"  # fairness lane for requests without a guild (CLI, tests)


class Engine:
    """Async streaming generation over a locally loaded model (implements LLMBackend)."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch: int = 8,
        max_queue: int = 64,
        max_queue_per_guild: int = 16,
        max_new_tokens: int = 512,
        context_tokens: int = 4096,
        kernel: str = "lean",
        weights: str = "dense",
        isa: str | None = None,
    ) -> None:
        """`isa`: the native kernel variant (auto or a key of native.ISAS; default: the
        GURU_ENGINE_ISA environment variable): see core/llm/engine/native/isa.py."""
        self.loaded = loaded
        self.max_batch = max_batch
        self.max_new_tokens = max_new_tokens
        self.context_tokens = min(context_tokens, loaded.context_tokens)
        self.prompts = PromptEncoder(loaded.tokenizer, loaded.generation_config)
        # the transformers model is built on first use: a LoRA adapter, a step without lean
        self.adapters = AdapterSet(lambda: loaded.model)
        self._queue: FairQueue[Job] = FairQueue(max_queue, max_queue_per_guild)
        self._batch = ActiveBatch(
            self._queue,
            self.adapters,
            self.prompts.eos_ids,
            max_batch,
            loaded.config.num_hidden_layers,
        )
        self._kernel, self._weights, self._isa = kernel, weights, isa
        self._commands: deque[Callable[[], None]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="guru-engine", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, loaded: LoadedModel, settings: Settings) -> Engine:
        return cls(
            loaded,
            max_batch=settings.max_batch,
            max_queue=settings.max_queue,
            max_queue_per_guild=settings.max_queue_per_guild,
            max_new_tokens=settings.max_new_tokens,
            context_tokens=settings.context_tokens,
            kernel=settings.engine_kernel,
            weights=settings.engine_weights,
            isa=settings.engine_isa,
        )

    def _build_lean(self, kernel: str, weights: str) -> LeanLlama | None:
        """The lean forward for base-model steps, or None to use transformers' forward."""
        if kernel == "hf":
            return None
        # Packed weights run on the mapped safetensors: the transformers model is not built
        # (`LazyModel`) until a LoRA step needs it. Dense ones run on the model's own tensors.
        params = self.loaded.weights()
        if params is None:
            params = ModelWeights.of_model(self.loaded.model)
        reason = lean_unsupported(params)
        if reason is not None:
            log.info("lean forward unavailable (%s); using transformers' forward", reason)
            return None
        # Re-quantizing other GGUF block types to 4 bits only when asked for (`int4`): on
        # Qwen2.5-0.5B it did not pass the quality gate reliably. `auto` packs Q8_0 / Q5_0
        # exactly as 8-bit codes and Q6_K to the nearest 8-bit groups instead (lean `_pack`).
        requantize = weights == "int4"
        if weights == "auto":
            # the native int4 kernels are CPU ones; a GPU keeps the loaded weights
            exact = params.dtype == torch.float32 and params.device.type == "cpu"
            weights = "int4" if exact and native.unsupported(self._isa) is None else "dense"
        if weights == "dense":
            # every step reads every weight: on the transformers model's tensors, so that a
            # LoRA step later reads the same pages instead of a second mapping of the file
            params = ModelWeights.of_model(self.loaded.model)
        path = self.loaded.path or None
        return LeanLlama(params, weights, cache_dir=path, isa=self._isa, requantize=requantize)

    @property
    def lean(self) -> LeanLlama | None:
        """Our forward, once the engine thread has built it (int4 packing takes ~2 s)."""
        return self._batch.lean

    @property
    def kernels(self) -> str:
        """Which native kernels the engine runs and why (for /status): the lean forward's
        once it is built, else what this CPU would choose."""
        if self.lean is not None:
            return self.lean.kernels
        return native.describe(self._isa)

    # -- async API (event loop side) -------------------------------------------------------

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """Queue `request`, then yield queue positions, text deltas and one final `done`.

        Closing the iterator early (or cancelling the task) cancels the request; its slot is
        freed at the next decode step.
        """
        job = await self._submit(request)
        try:
            while True:
                event = await job.events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if event.kind == "done":
                    return
        finally:
            if not job.done:
                self._cancel(job)

    async def complete(self, request: Request) -> Completion:
        async for event in self.stream(request):
            if event.kind == "done":
                assert event.completion is not None
                return event.completion
        raise RuntimeError("stream ended without a completion")  # unreachable

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request by id; True if it was found."""
        for job in [*self._queue.ordered(), *self._batch.active]:
            if job.request.request_id == request_id:
                self._cancel(job)
                return True
        return False

    async def load_adapter(self, name: str, path: str) -> None:
        """Load a peft LoRA adapter directory under `name` (between decode steps)."""
        await self._on_engine_thread(lambda: self.adapters.load(name, path))

    async def unload_adapter(self, name: str) -> None:
        """Forget an adapter; waits until no running request uses it."""
        while any(j.request.adapter == name for j in [*self._batch.active, *self._queue.ordered()]):
            await asyncio.sleep(0.05)
        await self._on_engine_thread(lambda: self.adapters.unload(name))

    def stats(self) -> BackendStats:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._batch.recent) if now - t <= 10.0]
        span = (now - recent[0][0]) if len(recent) > 1 else 0.0
        rate = sum(n for _, n in recent[1:]) / span if span > 0 else 0.0
        return BackendStats(
            backend="local",
            model=self.loaded.name,
            device=f"{self.loaded.device}/{self.loaded.dtype}" + self._weights_note(),
            active=sum(1 for job in list(self._batch.active) if not job.done),
            queued=len(self._queue),
            tokens_generated=self._batch.tokens_total,
            recent_tokens_per_s=rate,
            adapters=self.adapters.names(),
        )

    def _weights_note(self) -> str:
        """' (int4)' when the lean forward decodes from packed weights: the loaded dtype
        alone would hide how the model actually runs."""
        return " (int4)" if self.lean is not None and self.lean.int4 else ""

    async def aclose(self) -> None:
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join, 30)

    # -- submission --------------------------------------------------------------------------

    async def _submit(self, request: Request) -> Job:
        if self._stopping:
            raise GuruError("The model is shutting down; please try again shortly.")
        if request.adapter is not None and request.adapter not in self.adapters.names():
            raise NotFound(f"The adapter {request.adapter!r} is not loaded.")
        prompt_ids = await asyncio.to_thread(self.prompts.encode, request.messages)
        max_new = self._budget(len(prompt_ids), request.max_new_tokens)
        job = Job(
            request=request,
            prompt_ids=prompt_ids,
            max_new_tokens=max_new,
            chooser=TokenChooser(
                request.temperature, request.top_p, request.repetition_penalty, request.seed
            ),
            text=TextStream(self.loaded.tokenizer, tuple(request.stop)),
            loop=asyncio.get_running_loop(),
        )
        position = self._queue.push(request.guild_id or LOCAL_LANE, job)
        job.last_position = position
        job.events.put_nowait(StreamEvent("queued", queue_position=position))
        self._wake.set()
        return job

    def _budget(self, prompt_tokens: int, wanted: int | None) -> int:
        """Answer length for this prompt; a prompt that leaves no room is an error."""
        room = self.context_tokens - prompt_tokens
        if room < 1:
            raise InvalidInput(
                f"The prompt is {prompt_tokens} tokens, but this model accepts at most "
                f"{self.context_tokens} tokens of prompt and answer together; shorten it."
            )
        if wanted is not None and wanted < 1:
            raise InvalidInput("max_new_tokens must be at least 1.")
        return min(wanted or self.max_new_tokens, self.max_new_tokens, room)

    def _cancel(self, job: Job) -> None:
        job.cancelled = True
        if self._queue.remove(job):
            job.finish("cancelled")
        self._wake.set()

    async def _on_engine_thread(self, fn: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def command() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - handed back to the awaiting caller
                loop.call_soon_threadsafe(done.set_exception, exc)
            else:
                loop.call_soon_threadsafe(done.set_result, None)

        self._commands.append(command)
        self._wake.set()
        await done

    # -- engine thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._batch.use_lean(self._build_lean(self._kernel, self._weights))
        except Exception:  # noqa: BLE001 - the HF forward still serves every request
            log.exception("building the lean forward failed; using transformers' forward")
        with torch.inference_mode():
            while not self._stopping:
                while self._commands:
                    self._commands.popleft()()
                self._batch.admit()
                if not self._batch.active:
                    # Clear before looking, so a submit between the look and the wait still
                    # wakes us (clearing after the wait could lose it for up to a second).
                    self._wake.clear()
                    if not len(self._queue) and not self._commands:
                        self._wake.wait(timeout=1.0)
                    continue
                try:
                    self._decode_step()
                except Exception as exc:  # noqa: BLE001 - fail the batch, keep the engine alive
                    active = self._batch.active
                    log.exception("decode step failed; failing %d requests", len(active))
                    for job in active:
                        job.fail(GuruError("The model failed while answering; please try again."))
                    self._batch.drop_finished()
                    del exc
        for job in [*self._batch.active, *self._queue.ordered()]:
            job.fail(GuruError("The model is shutting down; please try again shortly."))

    def _decode_step(self) -> None:
        """One token for every active job (a method of its own: tests slow it down)."""
        self._batch.decode_step()
