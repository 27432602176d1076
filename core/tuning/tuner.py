"""What `guru tune start` and `/tune start` share: options → spec, upload (or the guild's
approved answers) → validated pairs → one queued job; and the loss curve of a finished version.

Both front ends call these, so a file the CLI refuses is refused by Discord with the same
line-numbered reasons, and neither queues anything on bad input.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.db.pool import Pool
from core.errors import InvalidInput
from core.tuning.data import Pair, approved_pairs, dedupe, parse_jsonl
from core.tuning.jobs import JobAlreadyLive, JobRepo, TuningJob
from core.tuning.plot import plot_losses
from core.tuning.registry import Adapter
from core.tuning.review import ReviewRepo
from core.tuning.spec import LoraJobSpec

__all__ = [
    "MAX_UPLOAD_BYTES",
    "QueuedJob",
    "cancel_job",
    "ensure_no_live_job",
    "job_spec",
    "loss_curve_png",
    "queue_job",
]

log = logging.getLogger(__name__)

# 20,000 pairs (data.MAX_PAIRS) of a few hundred words each; larger files are not a dataset
# a moderator uploads by hand.
MAX_UPLOAD_BYTES = 25 * 2**20
LOSS_CURVE = "loss.png"  # written by run_lora_job beside the adapter, copied with it


@dataclass(frozen=True)
class QueuedJob:
    """A job just queued: its id, how many pairs (after deduplication) and from where."""

    id: int
    guild_id: int
    pairs: int
    source: str  # the upload's name, or "approved answers"
    spec: LoraJobSpec


def job_spec(model: str, qlora: bool = False, **overrides: Any) -> LoraJobSpec:
    """The spec of a new job; options left as None keep the spec's defaults."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return LoraJobSpec(model=model, qlora=qlora).replace(**given)


async def ensure_no_live_job(pool: Pool, guild_id: int) -> None:
    """JobAlreadyLive, naming the job, when the guild has one queued or running: checked before
    an upload is read or validated (the unique index still decides races in `enqueue`)."""
    live = await JobRepo(pool).live(guild_id, limit=1)
    if live:
        raise JobAlreadyLive.of(live)


async def queue_job(
    pool: Pool,
    guild_id: int,
    spec: LoraJobSpec,
    *,
    data: bytes | None = None,
    source: str = "the file",
    requested_by: int | None = None,
) -> QueuedJob:
    """Validate `data` (JSONL; None = the guild's approved 👍 answers) and queue a job.

    InvalidInput names every bad line (and nothing is queued) or says there is no data;
    JobAlreadyLive names the guild's queued or running job (one per guild at a time)."""
    await ensure_no_live_job(pool, guild_id)
    pairs: list[Pair]
    if data is not None:
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"{source} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; "
                "split it or keep the best examples."
            )
        pairs = await asyncio.to_thread(parse_jsonl, data, source)
    else:
        pairs = await approved_pairs(pool, guild_id)
        if not pairs:
            pending = (await ReviewRepo(pool).counts(guild_id)).pending
            waiting = (
                f"; {pending} 👍 answer{'' if pending == 1 else 's'} "
                f"{'is' if pending == 1 else 'are'} waiting for a moderator's review"
                if pending
                else ""
            )
            raise InvalidInput(
                f"This server has no approved 👍 answers yet{waiting}. Approve "
                "some in the review, or give a JSONL file of examples instead."
            )
        source = "approved answers"
    pairs = dedupe(pairs)
    job_id = await JobRepo(pool).enqueue(
        guild_id, spec.to_dict(), [p.to_json() for p in pairs], requested_by=requested_by
    )
    return QueuedJob(job_id, guild_id, len(pairs), source, spec)


async def cancel_job(
    pool: Pool, guild_id: int, job_id: int, actor_id: int | None = None
) -> TuningJob:
    """Cancel the guild's queued or running job `job_id` (`guru tune cancel`, `/tune cancel`);
    the job as it was. NotFound for another guild's job; InvalidInput when it has ended."""
    repo = JobRepo(pool)
    job = await repo.get(guild_id, job_id)
    if not await repo.cancel(guild_id, job_id, actor_id=actor_id):
        job = await repo.get(guild_id, job_id)  # it may have ended since the first read
        raise InvalidInput(f"Tuning job {job_id} is {job.status} already; nothing to cancel.")
    return job


def loss_curve_png(adapter: Adapter) -> bytes | None:
    """The version's loss curve as PNG bytes: the file kept with the adapter, else drawn again
    from its metrics (adapters copied in by hand); None when neither is there. Blocking."""
    kept = Path(adapter.path) / LOSS_CURVE
    if kept.is_file():
        return kept.read_bytes()
    m = adapter.metrics
    if not m.get("train_losses") or "eval_loss_after" not in m:
        return None
    with tempfile.TemporaryDirectory(prefix="guru-loss-") as tmp:
        path = plot_losses(
            str(Path(tmp) / LOSS_CURVE),
            m["train_losses"],
            m["eval_loss_before"],
            m["eval_loss_after"],
            f"{adapter.method} on {Path(adapter.base_model).name}",
        )
        log.info("redrew the loss curve of guild %d v%d", adapter.guild_id, adapter.version)
        return Path(path).read_bytes()
