"""`guru tune …`: per-guild LoRA/QLoRA tuning without Discord (the /tune commands call the same).

`start` validates the data before anything is queued; `worker` (the Procfile's `trainer`) runs
the jobs; `activate`/`rollback` switch a guild's adapter and running bots follow at once.
`review` lists the 👍 answers waiting for a moderator; `approve`/`reject` decide them (approved
ones are what `start` without --data trains on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from core.config import Settings
from core.db.pool import Database
from core.errors import InvalidInput, NotFound
from core.tuning.jobs import JobRepo, TuningJob
from core.tuning.registry import Adapter, AdapterRepo, other_base_model
from core.tuning.review import ReviewItem, ReviewRepo
from core.tuning.spec import LoraJobSpec
from core.tuning.tuner import cancel_job, job_spec, queue_job
from core.tuning.worker import Worker, WorkerOptions

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `tune` command group."""
    parser = subparsers.add_parser(
        "tune", help="tuning: per-guild LoRA/QLoRA adapters", description=__doc__
    )
    actions = parser.add_subparsers(dest="tune_action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="queue a tuning job for a guild")
    _guild(start)
    start.add_argument(
        "--data", metavar="FILE", help="JSONL of pairs (default: the guild's approved 👍 answers)"
    )
    start.add_argument("--qlora", action="store_true", help="4-bit NF4 base (QLoRA)")
    start.add_argument("--epochs", type=int, metavar="N")
    start.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    start.add_argument("--lr", type=float, metavar="LR", dest="learning_rate")
    start.add_argument("--rank", type=int, metavar="R")
    start.add_argument("--batch-size", type=int, metavar="B")
    start.add_argument("--checkpoint-every", type=int, metavar="N")
    start.add_argument("--model", help="base model (default: GURU_MODEL)")
    start.set_defaults(handler=start_command)
    status = actions.add_parser("status", help="jobs: live and recent (all guilds, or one)")
    status.add_argument("--guild", type=int, metavar="G")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=status_command)
    listing = actions.add_parser("list", help="a guild's adapter versions")
    _guild(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_command)
    activate = actions.add_parser("activate", help="serve this version to the guild")
    activate.add_argument("version", type=int)
    _guild(activate)
    activate.set_defaults(handler=activate_command)
    rollback = actions.add_parser("rollback", help="back to the previous version (or the base)")
    _guild(rollback)
    rollback.set_defaults(handler=rollback_command)
    export = actions.add_parser("export", help="copy a version out as a peft adapter directory")
    export.add_argument("version", type=int)
    _guild(export)
    export.add_argument("--out", required=True, metavar="DIR")
    export.set_defaults(handler=export_command)
    cancel = actions.add_parser("cancel", help="stop a queued or running job")
    cancel.add_argument("job", type=int)
    _guild(cancel)
    cancel.set_defaults(handler=cancel_command)
    review = actions.add_parser("review", help="a guild's 👍 answers waiting for approval")
    _guild(review)
    review.add_argument("--limit", type=int, default=50, metavar="N")
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=review_command)
    for name, verb in (("approve", "use as tuning pairs"), ("reject", "never use")):
        decide = actions.add_parser(name, help=f"{verb}: 👍 answers by id (see `review`)")
        decide.add_argument("ids", type=int, nargs="+", metavar="ID")
        _guild(decide)
        decide.set_defaults(handler=decide_command, approve=name == "approve")
    worker = actions.add_parser("worker", help="run tuning jobs (the Procfile's trainer)")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument("--heartbeat-s", type=float, default=5.0)
    worker.add_argument(
        "--stale-after-s",
        type=float,
        default=60.0,
        help="a running job silent this long is taken over (its worker died)",
    )
    worker.add_argument("--max-attempts", type=int, default=3)
    worker.set_defaults(handler=worker_command)


def _guild(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guild", type=int, required=True, metavar="G", help="Discord guild id")


@asynccontextmanager
async def _db(settings: Settings) -> AsyncIterator[Database]:
    db = await Database.open(settings, max_size=2)
    try:
        yield db
    finally:
        await db.aclose()


def _spec(args: argparse.Namespace, settings: Settings) -> LoraJobSpec:
    return job_spec(
        args.model or settings.model,
        args.qlora,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        rank=args.rank,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
    )


async def start_command(args: argparse.Namespace, settings: Settings) -> int:
    spec = _spec(args, settings)  # option errors before any file or database work
    data: bytes | None = None
    if args.data:
        path = Path(args.data)
        if not path.is_file():
            raise NotFound(f"No file at {path}.")
        data = await asyncio.to_thread(path.read_bytes)
    async with _db(settings) as db:
        job = await queue_job(
            db.pool,
            args.guild,
            spec,
            data=data,
            source=Path(args.data).name if args.data else "the file",
        )
    print(
        f"Queued tuning job {job.id} for guild {args.guild}: {job.pairs} pairs, "
        f"{'QLoRA' if spec.qlora else 'LoRA'} on {spec.model}. Run `guru tune worker` to train."
    )
    return 0


def _job_line(job: TuningJob) -> str:
    p = job.progress or {}
    where = f"step {p.get('step', 0)}/{p.get('total_steps', '?')}" if p.get("total_steps") else ""
    loss = f" loss {p['loss']:.3f}" if isinstance(p.get("loss"), float) else ""
    done = f" -> v{job.adapter_version}" if job.adapter_version else ""
    err = f" ({job.error})" if job.error else ""
    return (
        f"{job.id:>5}  guild {job.guild_id:<20} {job.status:<9} {p.get('phase', ''):<11} "
        f"{where}{loss}{done}{err}"
    )


async def status_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        repo = JobRepo(db.pool)
        jobs = await (repo.for_guild(args.guild) if args.guild else repo.overview())
    if args.json:
        print(json.dumps([_job_dict(j) for j in jobs], indent=2, default=str))
    elif not jobs:
        print("No tuning jobs.")
    else:
        print("\n".join(_job_line(j) for j in jobs))
    return 0


def _job_dict(job: TuningJob) -> dict[str, Any]:
    return {
        k: getattr(job, k)
        for k in (
            "id",
            "guild_id",
            "status",
            "progress",
            "error",
            "attempts",
            "adapter_version",
            "created_at",
            "finished_at",
        )
    }


def _adapter_line(a: Adapter, serving: str | None = None) -> str:
    m = a.metrics
    loss = (
        f"eval loss {m['eval_loss_before']:.3f} -> {m['eval_loss_after']:.3f}"
        if "eval_loss_after" in m
        else ""
    )
    mark = "*" if a.active else " "
    line = f"{mark} v{a.version:<4} {a.method:<14} {a.created_at:%Y-%m-%d %H:%M}  {loss}  {a.path}"
    return line + (f"  (trained on {a.base_model})" if other_base_model(a, serving) else "")


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        adapters = await AdapterRepo(db.pool).list(args.guild)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "version": a.version,
                        "active": a.active,
                        "method": a.method,
                        "path": a.path,
                        "base_model": a.base_model,
                        "usable": other_base_model(a, settings.model) is None,
                        "metrics": a.metrics,
                    }
                    for a in adapters
                ],
                indent=2,
            )
        )
    elif not adapters:
        print(f"Guild {args.guild} has no adapters yet (it uses the base model).")
    else:
        print("\n".join(_adapter_line(a, settings.model) for a in adapters))
    return 0


async def activate_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        adapter = await AdapterRepo(db.pool).activate(
            args.guild, args.version, serving=settings.model
        )
    print(f"Guild {args.guild} now uses adapter v{adapter.version}.")
    return 0


async def rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        adapter = await AdapterRepo(db.pool).rollback(args.guild)
    now = f"adapter v{adapter.version}" if adapter else "the base model"
    print(f"Guild {args.guild} rolled back; it now uses {now}.")
    return 0


async def export_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        adapter = await AdapterRepo(db.pool).get(args.guild, args.version)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty; choose a new directory.")
    await asyncio.to_thread(shutil.copytree, adapter.path, out, dirs_exist_ok=True)
    print(
        f"Exported v{adapter.version} to {out} (load with peft: "
        f"PeftModel.from_pretrained(base, {str(out)!r}))."
    )
    return 0


async def cancel_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        await cancel_job(db.pool, args.guild, args.job)
    print(f"Cancelled tuning job {args.job}; the active adapter is unchanged.")
    return 0


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _review_line(item: ReviewItem) -> str:
    return (
        f"{item.id:>7}  {item.created_at:%Y-%m-%d %H:%M}  /{item.command:<8} "
        f"Q: {_one_line(item.question, 60)}\n{'':>7}  A: {_one_line(item.answer, 100)}"
    )


async def review_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1.")
    async with _db(settings) as db:
        repo = ReviewRepo(db.pool)
        items = await repo.pending(args.guild, limit=args.limit)
        counts = await repo.counts(args.guild)
    if args.json:
        print(
            json.dumps(
                {
                    "approved": counts.approved,
                    "pending": counts.pending,
                    "rejected": counts.rejected,
                    "answers": [item.__dict__ for item in items],
                },
                indent=2,
                default=str,
                ensure_ascii=False,
            )
        )
        return 0
    if items:
        print("\n".join(_review_line(i) for i in items))
        more = counts.pending - len(items)
        if more > 0:
            print(f"… and {more} more (--limit).")
    else:
        print(f"Guild {args.guild} has no 👍 answers waiting for review.")
    print(
        f"{counts.approved} approved, {counts.pending} pending, {counts.rejected} rejected. "
        f"Decide with `guru tune approve|reject ID... --guild {args.guild}`."
    )
    return 0


async def decide_command(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as db:
        repo = ReviewRepo(db.pool)
        decisions = await repo.decide(args.guild, args.ids, args.approve)
        counts = await repo.counts(args.guild)
    verb = "approved" if args.approve else "rejected"
    changed = [d for d in decisions if d.changed]
    same = [d for d in decisions if not d.changed]
    if changed:
        was = ", ".join(
            f"#{d.id}" + (f" (was {d.before})" if d.before != "pending" else "") for d in changed
        )
        print(f"{verb.capitalize()} {was}.")
    if same:
        print(f"Already {verb}: {', '.join(f'#{d.id}' for d in same)}.")
    print(f"Guild {args.guild}: {counts.approved} approved, {counts.pending} pending.")
    return 0


async def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    options = WorkerOptions(
        heartbeat_s=args.heartbeat_s,
        stale_after_s=args.stale_after_s,
        max_attempts=args.max_attempts,
    )
    async with _db(settings) as db:
        print(f"guru tune worker {options.name}: waiting for jobs", file=sys.stderr, flush=True)
        done = await Worker(db.pool, settings, options).run(once=args.once)
    print(f"Finished {done} job(s).", file=sys.stderr)
    return 0
