"""`ActiveBatch`: the sequences being decoded together, on the engine thread.

Continuous batching: queued jobs are admitted between steps (their prompts prefilled, several
in one lean pass), every step decodes one token for each active job in one forward pass (the
lean forward for base-model rows, transformers + peft when a row uses a LoRA adapter), and
finished or cancelled jobs leave at once, their KV rows dropped. Only the engine thread
touches it.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import torch
from transformers import DynamicCache

from core.errors import GuruError
from core.llm.engine.adapters import AdapterSet
from core.llm.engine.job import Job
from core.llm.engine.kv import BatchKV
from core.llm.engine.lean import LeanLlama
from core.llm.engine.memory import release_freed_memory
from core.llm.engine.scheduler import FairQueue
from core.llm.types import StreamEvent

__all__ = ["ActiveBatch", "PREFILL_GROUP_TOKENS"]

log = logging.getLogger(__name__)

PREFILL_GROUP_TOKENS = 2048  # prompts prefilled in one pass, at most (activations ~30 MB)


def _prefill_groups(jobs: list[Job], budget: int) -> list[list[Job]]:
    """Consecutive groups of jobs whose prompts add up to at most `budget` tokens (a longer
    prompt goes alone): bounds the activations of one prefill pass."""
    groups: list[list[Job]] = []
    tokens = budget
    for job in jobs:
        if tokens + len(job.prompt_ids) > budget:
            groups.append([])
            tokens = 0
        groups[-1].append(job)
        tokens += len(job.prompt_ids)
    return groups


class ActiveBatch:
    """The active jobs and their KV cache; `admit` and `decode_step` run on the engine thread."""

    def __init__(
        self,
        queue: FairQueue[Job],
        adapters: AdapterSet,
        eos_ids: frozenset[int] | set[int],
        max_batch: int,
        num_layers: int,
    ) -> None:
        self.queue = queue
        self.adapters = adapters
        self.eos_ids = eos_ids
        self.max_batch = max_batch
        self.active: list[Job] = []
        self.kv = BatchKV(num_layers)
        self.lean: LeanLlama | None = None
        self.tokens_total = 0
        self.recent: deque[tuple[float, int]] = deque(maxlen=256)

    def use_lean(self, lean: LeanLlama | None) -> None:
        """Decode base-model rows with our forward (its cache dtype decides the KV's)."""
        self.lean = lean
        if lean is not None and lean.cache_dtype is not None:
            self.kv = BatchKV(len(lean.layers), dtype=lean.cache_dtype)

    def admit(self) -> None:
        jobs: list[Job] = []
        while len(self.active) + len(jobs) < self.max_batch:
            job = self.queue.pop()
            if job is None:
                break
            if job.cancelled:
                job.finish("cancelled")
                continue
            jobs.append(job)
        if not jobs:
            return
        lean: list[Job] = []
        hf: list[Job] = []
        for job in jobs:
            (lean if self.lean is not None and job.request.adapter is None else hf).append(job)
        for group in _prefill_groups(lean, PREFILL_GROUP_TOKENS):
            self._prefill_lean(group)
        for job in hf:
            self._prefill_hf(job)
        self.drop_finished()
        self._report_positions()

    def _prefill_lean(self, jobs: list[Job]) -> None:
        """Prefill several prompts in one lean pass; a failure is retried prompt by prompt
        so that one bad request fails alone."""
        try:
            results = self.lean.prefill_many([job.prompt_ids for job in jobs])
        except Exception:  # noqa: BLE001 - one bad request must not stop the others
            if len(jobs) > 1:
                for job in jobs:
                    self._prefill_lean([job])
                return
            self._prefill_failed(jobs[0])
            return
        self.kv.add_rows([kv for _, kv in results])
        for job, (logits, _) in zip(jobs, results):
            self.active.append(job)
            self._accept(job, logits)

    @staticmethod
    def _prefill_failed(job: Job) -> None:
        log.exception("prefill failed for %s", job.request.request_id)
        job.fail(GuruError("The model failed on this prompt; please try again."))

    def _prefill_hf(self, job: Job) -> None:
        model = self.adapters.model
        try:
            ids = torch.tensor([job.prompt_ids], device=model.device)
            cache = DynamicCache()
            out = model(
                input_ids=ids,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **self.adapters.forward_kwargs([job.request.adapter]),
            )
        except Exception:  # noqa: BLE001 - one bad request must not stop the others
            self._prefill_failed(job)
            return
        self.kv.add_row(cache)
        self.active.append(job)
        self._accept(job, out.logits[0, -1])

    def decode_step(self) -> None:
        if self.lean is not None and all(job.request.adapter is None for job in self.active):
            logits = self.lean.decode([job.last_token for job in self.active], self.kv)
            self.kv.append_step()
            self._accept_all(logits)
            return
        model = self.adapters.model
        tokens = torch.tensor([[job.last_token] for job in self.active], device=model.device)
        mask, positions = self.kv.step_inputs()
        out = model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            cache=self.kv.cache,
            use_cache=True,
            **self.adapters.forward_kwargs([job.request.adapter for job in self.active]),
        )
        self.kv.append_step()
        self._accept_all(out.logits[:, -1])

    def _accept_all(self, logits: torch.Tensor) -> None:
        for row, job in enumerate(self.active):
            if not job.cancelled:
                self._accept(job, logits[row])
        self.drop_finished()

    def _accept(self, job: Job, logits: torch.Tensor) -> None:
        """Choose the job's next token and decide whether the job is finished."""
        history = torch.tensor(job.history()) if job.chooser.processors else torch.empty(0)
        token = job.chooser.choose(logits, history)
        if job.first_token_at is None:
            job.first_token_at = time.perf_counter()
        job.last_token = token
        job.generated += 1
        self.tokens_total += 1
        self.recent.append((time.monotonic(), 1))
        if token in self.eos_ids:
            job.finish("stop")
            return
        job.send_text(job.text.push(token))
        if job.text.stopped:
            job.finish("stop")
        elif job.generated >= job.max_new_tokens:
            job.finish("length")

    def drop_finished(self) -> None:
        for job in self.active:
            if job.cancelled and not job.done:
                job.finish("cancelled")
        keep = [i for i, job in enumerate(self.active) if not job.done]
        self.kv.keep_rows(keep)
        if self.active and not keep:
            release_freed_memory()  # the batch's cache and buffers: back to the system
        self.active = [self.active[i] for i in keep]

    def _report_positions(self) -> None:
        for position, job in enumerate(self.queue.ordered(), start=1):
            if job.last_position != position:
                job.last_position = position
                job.send(StreamEvent("queued", queue_position=position))
