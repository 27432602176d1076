"""`python -m tests.e2e.bot_load [-n 50]`: N concurrent /ask through the Discord emulator.

A benchmark that lives beside the emulator it drives (the `guru` package ships neither).
The real GuruBot (discord.py, every cog) connects to the local Discord emulator (tests/e2e),
with a database of its own (`guru_bench_bot_load`, fresh each run, on DATABASE_URL's server or
the embedded one). Each of G guilds gets one document; N users ask at the same moment. Reports:
- ack latency: user action → interaction callback (Discord's limit is 3 s);
- answer latency: user action → the final edit (the one carrying 👍/👎);
- event-loop lag: the worst overshoot of a 50 ms sleeper (bot and emulator share the loop);
- gateway warnings ("heartbeat blocked").
`--model tiny` (default) answers with a random 2-layer Llama on the bundled tokenizer, so the
numbers are the bot's overhead and batching; `--model configured` uses GURU_MODEL.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)

DOC = (
    "Guru answers questions from this server's documents: pins, uploaded files and "
    "messages. Ask with /ask; Guru cites its sources."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--asks", type=int, default=50, help="concurrent /ask (default 50)")
    parser.add_argument("--guilds", type=int, default=5, help="guilds to spread them over")
    parser.add_argument("--tokens", type=int, default=48, help="answer length in tokens")
    parser.add_argument("--model", choices=("tiny", "configured"), default="tiny")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(_run(args, settings))
    print(json.dumps(report) if args.json else render(report))
    return 0 if report["answered"] == report["asks"] else 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _llm(args: argparse.Namespace, settings: Settings) -> Any:
    from core.llm.backend import open_llm
    from core.llm.engine.engine import Engine
    from core.llm.models.loading import ModelCache, load_tokenizer
    from core.llm.models.sources import prepare_model_dir, resolve_source

    if args.model == "configured":
        return await open_llm(settings, ModelCache())
    from tests.fixtures.models import make_babbling_llama

    hf_dir = prepare_model_dir(resolve_source("smollm2-135m", settings.data_dir))
    tiny = make_babbling_llama(await asyncio.to_thread(load_tokenizer, hf_dir))
    return Engine.from_settings(dataclasses.replace(tiny, context_tokens=4096), settings)


async def _loop_lag(stop: asyncio.Event, worst: list[float], period: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(period)
        worst[0] = max(worst[0], loop.time() - start - period)


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from bench.rag_eval.databases import bench_pool, server_url
    from bot.client import GuruBot
    from core.db.pool import Database
    from core.guilds import GuildSettingsRepo
    from core.rag.types import ParsedDocument, Section
    from core.services import Services
    from tests.e2e.emulator import Emulator

    settings = dataclasses.replace(
        settings,
        max_queue=max(settings.max_queue, 2 * args.asks),
        max_queue_per_guild=max(settings.max_queue_per_guild, args.asks),
        temperature=0.0,
        # the bot's overhead under load is measured, not fair use (tests/e2e/test_fair_use.py)
        user_requests_per_minute=0,
        guild_requests_per_minute=0,
    )
    warnings: list[str] = []
    handler = _Collect(warnings)
    logging.getLogger("discord.gateway").addHandler(handler)
    async with (
        Emulator(heartbeat_interval_ms=1000) as emu,
        server_url(settings) as url,
        bench_pool(url, "guru_bench_bot_load", fresh=True) as pool,
    ):
        bot_settings = emu.bot_settings(settings)
        services = Services(bot_settings, llm=await _llm(args, settings), db=Database(pool))
        bot = GuruBot(bot_settings, services=services, guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start(emu.token))
        try:
            while not bot.is_ready():
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
            explain = bot.get_cog("Explain")
            if explain is not None:  # its notes ingest at start: keep that out of the numbers
                await explain.notes_ready  # type: ignore[attr-defined]
            kb, prefs = services.knowledge, GuildSettingsRepo(pool)
            guilds = [await emu.create_guild(f"bench-{i}") for i in range(args.guilds)]
            for guild in guilds:
                doc = ParsedDocument("upload:guru.md", "About Guru", (Section("", DOC),))
                await kb.ingestor.ingest_document(guild.id, doc)
                await prefs.set(guild.id, actor_id=None, max_answer_tokens=args.tokens)
            while any(bot.get_guild(g.id) is None for g in guilds):
                await asyncio.sleep(0.02)
            return await _measure(args, emu, guilds, warnings)
        finally:
            logging.getLogger("discord.gateway").removeHandler(handler)
            await bot.close()
            await asyncio.gather(task, return_exceptions=True)
            if services.llm is not None:
                await services.llm.aclose()
            services.embedder.close()


async def _measure(
    args: argparse.Namespace, emu: Any, guilds: list[Any], warnings: list[str]
) -> dict[str, Any]:
    stop, worst = asyncio.Event(), [0.0]
    monitor = asyncio.create_task(_loop_lag(stop, worst))
    started = time.monotonic()
    inters = []
    for n in range(args.asks):
        guild = guilds[n % len(guilds)]
        member = emu.add_member(guild, f"user-{n}")
        question = f"Question {n}: what does Guru answer from?"
        inters.append(await emu.send_command(guild, member, "ask", {"question": question}))

    def done(i: Any) -> bool:
        return bool(i.messages) and f"guru:fb:{i.id}:up" in i.messages[-1].custom_ids()

    try:
        await emu.wait_for(lambda: all(done(i) for i in inters), 600, what="every answer")
    except AssertionError:
        log.warning("not every /ask was answered within 600 s")
    stop.set()
    await monitor
    acks = [i.ack_latency_s for i in inters if i.ack_latency_s is not None]
    answers = [i.messages[-1].latest.at - i.created_at for i in inters if done(i)]
    return {
        "asks": args.asks,
        "guilds": len(guilds),
        "tokens": args.tokens,
        "model": args.model,
        "acked": len(acks),
        "answered": len(answers),
        "ack_p50_s": round(percentile(acks, 0.5), 3),
        "ack_p99_s": round(percentile(acks, 0.99), 3),
        "answer_p50_s": round(percentile(answers, 0.5), 2),
        "answer_p99_s": round(percentile(answers, 0.99), 2),
        "loop_lag_max_s": round(worst[0], 3),
        "wall_s": round(time.monotonic() - started, 1),
        "gateway_warnings": [w for w in warnings if "block" in w.lower()],
    }


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def render(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{r['asks']} concurrent /ask over {r['guilds']} guilds, {r['tokens']} tokens, "
            f"model {r['model']}: {r['acked']} acked, {r['answered']} answered in {r['wall_s']} s",
            f"ack latency     p50 {r['ack_p50_s']:.3f} s   p99 {r['ack_p99_s']:.3f} s"
            "   (limit 3 s)",
            f"answer latency  p50 {r['answer_p50_s']:.2f} s   p99 {r['answer_p99_s']:.2f} s",
            f"event-loop lag  max {r['loop_lag_max_s']:.3f} s; heartbeat-blocked warnings: "
            f"{len(r['gateway_warnings'])}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.bot_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return run(parser.parse_args(), Settings.from_env())


if __name__ == "__main__":
    raise SystemExit(main())
