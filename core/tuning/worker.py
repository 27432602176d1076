"""`guru tune worker`: claim tuning jobs, train, heartbeat, record the adapter.

Training runs in a thread (`run_lora_job`); the event loop meanwhile writes a heartbeat with
the latest progress every `heartbeat_s`. Kill the process at any point and the job's heartbeat
goes stale: the next worker claims it and `run_lora_job` resumes from the job's checkpoint in
`$GURU_DATA_DIR/tuning/jobs/<id>/`. The active adapter is only ever changed by activate and
rollback, so nothing a worker does (or fails to do) changes what the bot serves. The job's
folder holds the guild's training data: it is removed whenever the job ends here (done,
failed, cancelled, or its guild forgotten), and kept only for a worker that took it over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.db.pool import Pool
from core.errors import GuruError, NotFound
from core.tuning.data import Pair, parse_jsonl, split_train_eval, write_jsonl
from core.tuning.jobs import JOBS_CHANNEL, JobRepo, TuningJob
from core.tuning.lora import run_lora_job
from core.tuning.registry import AdapterRepo
from core.tuning.spec import LoraJobSpec, Progress

__all__ = ["Worker", "WorkerOptions", "job_dir"]

log = logging.getLogger(__name__)


class JobLost(GuruError):
    """The job was taken over (our heartbeat went stale) or cancelled: stop training it."""


@dataclass(frozen=True)
class WorkerOptions:
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0  # a heartbeat older than this means the worker died
    max_attempts: int = 3
    idle_poll_s: float = 30.0  # also woken by NOTIFY guru_tuning_jobs
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


def job_dir(data_dir: str, job_id: int) -> Path:
    return Path(data_dir) / "tuning" / "jobs" / str(job_id)


class Worker:
    def __init__(self, pool: Pool, settings: Settings, options: WorkerOptions | None = None):
        self.pool, self.settings = pool, settings
        self.options = options or WorkerOptions()
        self.jobs, self.adapters = JobRepo(pool), AdapterRepo(pool)

    async def run(self, once: bool = False) -> int:
        """Work until cancelled; with `once`, run at most one job. Returns jobs finished."""
        finished = 0
        while True:
            job = await self.jobs.claim(
                self.options.name, self.options.stale_after_s, self.options.max_attempts
            )
            if job is not None:
                finished += await self.run_job(job)
                if once:
                    return finished
                continue
            if once:
                return finished
            await self._wait_for_work()

    async def run_job(self, job: TuningJob) -> int:
        """Train one claimed job to an adapter version; 1 if done, 0 if it failed."""
        progress: dict[str, Any] = {"phase": "starting", "attempt": job.attempts}
        lost = threading.Event()

        def on_progress(p: Progress) -> None:  # training thread
            progress.update(p.to_dict())
            if lost.is_set():
                raise JobLost("This job was taken over by another worker or cancelled.")

        beat = asyncio.create_task(self._heartbeat(job, progress, lost))
        try:
            spec = await self._prepare(job)
            result = await asyncio.to_thread(run_lora_job, spec, on_progress)
            progress.update(
                {
                    "phase": "done",
                    "eval_loss_before": result.eval_loss_before,
                    "eval_loss_after": result.eval_loss_after,
                }
            )
            await self.adapters.record(
                guild_id=job.guild_id,
                job_id=job.id,
                worker=self.options.name,
                source_dir=result.adapter_dir,
                data_dir=self.settings.data_dir,
                method=result.method,
                base_model=spec.model,
                metrics=result.metrics(),
                progress=progress,
            )
        except JobLost:
            log.warning("job %d was taken from this worker; dropped", job.id)
            if not await self._held_by_another(job):  # cancelled or forgotten: nobody resumes
                await self._remove_dir(job)
            return 0
        except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded, not raised
            reason = (
                exc.user_message if isinstance(exc, GuruError) else f"{type(exc).__name__}: {exc}"
            )
            log.exception("job %d failed", job.id)
            try:
                await self.jobs.fail(job.id, self.options.name, reason[:2000])
            finally:  # 'failed' is final: no worker will resume from the folder
                await self._remove_dir(job)
            return 0
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await self._remove_dir(job)
        return 1

    async def _held_by_another(self, job: TuningJob) -> bool:
        try:
            now = await self.jobs.get(job.guild_id, job.id)
        except NotFound:  # its guild was forgotten
            return False
        except Exception:  # noqa: BLE001 - unsure: keep the folder a new holder may need
            log.warning("could not read job %d back", job.id, exc_info=True)
            return True
        return now.status == "running" and now.worker != self.options.name

    async def _remove_dir(self, job: TuningJob) -> None:
        await asyncio.to_thread(shutil.rmtree, job_dir(self.settings.data_dir, job.id), True)

    async def _prepare(self, job: TuningJob) -> LoraJobSpec:
        """The job's spec with this machine's paths; its data split into train/eval files."""
        work = job_dir(self.settings.data_dir, job.id)
        base = LoraJobSpec.from_dict(job.spec)
        spec = base.replace(
            data_dir=self.settings.data_dir,
            out_dir=str(work),
            train_path=str(work / "train.jsonl"),
            eval_path=str(work / "eval.jsonl"),
            threads=self.settings.threads,
            device=self.settings.device if base.device == "auto" else base.device,
        )
        dataset = await self.jobs.dataset(job.id)
        held = await asyncio.to_thread(_write_split, dataset, spec)
        if not held:
            spec = spec.replace(eval_path="")
        if not spec.probe_prompts:  # one held-out question, answered before and after
            pool = held or dataset_pairs(dataset)
            spec = spec.replace(probe_prompts=(pool[0].messages[-1][1],))
        return spec

    async def _heartbeat(
        self, job: TuningJob, progress: dict[str, Any], lost: threading.Event
    ) -> None:
        while True:
            try:
                if not await self.jobs.heartbeat(job.id, self.options.name, dict(progress)):
                    lost.set()
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried; staleness decides
                log.warning("heartbeat for job %d failed", job.id, exc_info=True)
            await asyncio.sleep(self.options.heartbeat_s)

    async def _wait_for_work(self) -> None:
        """Sleep until a job is queued (NOTIFY) or the poll interval passes."""
        import psycopg

        try:
            async with await psycopg.AsyncConnection.connect(
                self.pool.conninfo, autocommit=True
            ) as conn:
                await conn.execute(f"LISTEN {JOBS_CHANNEL}")
                async for _ in conn.notifies(timeout=self.options.idle_poll_s, stop_after=1):
                    return
        except psycopg.Error:
            log.warning("could not listen for jobs; polling", exc_info=True)
            await asyncio.sleep(self.options.idle_poll_s)


def dataset_pairs(dataset: list[dict[str, Any]]) -> list[Pair]:
    return parse_jsonl("\n".join(json.dumps(d) for d in dataset), "the job's data")


def _write_split(dataset: list[dict[str, Any]], spec: LoraJobSpec) -> list[Pair]:
    """Write train.jsonl and eval.jsonl (the same split on every attempt); return the eval pairs."""
    train, held = split_train_eval(dataset_pairs(dataset), eval_fraction=0.1, seed=spec.seed)
    os.makedirs(spec.out_dir, exist_ok=True)
    write_jsonl(train, spec.train_path)
    write_jsonl(held, spec.eval_path)
    return held
