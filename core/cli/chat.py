"""`guru chat`: talk to Guru in a terminal, no Discord needed.

This is what `scripts/run` opens when DISCORD_TOKEN is unset. It uses the same `Services` as
the bot (embedded database, local model or GURU_LLM_URL). Lines starting with `/` are console
commands; everything else is a chat turn. Works with piped input too (one turn per line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from core.config import Settings
from core.errors import GuruError
from core.llm.types import LLMBackend, Message, Request
from core.services import Services

SYSTEM_PROMPT = "You are Guru, a helpful assistant for a Discord community. Answer briefly."
HISTORY_TURNS = 6  # earlier turns are dropped so the prompt stays well inside the context
HELP = "Commands: /help, /reset (forget the conversation), /status, /quit. Anything else is a question."


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with Guru in this terminal (no Discord needed)")
    p.add_argument("--temperature", type=float, default=None, help="default: GURU_TEMPERATURE")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        print("Starting Guru (database and model)…", flush=True)
    services = await Services.open(settings)
    try:
        assert services.llm is not None
        stats = services.llm.stats()
        if interactive:
            print(f"Guru is ready: {stats.model} on {stats.device}. {HELP}", flush=True)
        await _loop(services.llm, args, settings, interactive)
    finally:
        await services.aclose()
    return 0


async def _loop(llm: LLMBackend, args: argparse.Namespace, settings: Settings, interactive: bool) -> None:
    history: list[Message] = []
    temperature = settings.temperature if args.temperature is None else args.temperature
    while True:
        try:
            line = await asyncio.to_thread(input, "you> " if interactive else "")
        except EOFError:
            return
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/help":
            print(HELP)
        elif line == "/reset":
            history.clear()
            print("(conversation forgotten)")
        elif line == "/status":
            s = llm.stats()
            print(f"model {s.model} ({s.backend}, {s.device}); active {s.active}, queued {s.queued}; "
                  f"{s.tokens_generated} tokens generated, {s.recent_tokens_per_s:.1f} tok/s recently")
        else:
            answer = await _answer(llm, history, line, temperature, args.max_new_tokens, interactive)
            if answer is not None:
                history += [Message("user", line), Message("assistant", answer)]
                del history[: max(0, len(history) - 2 * HISTORY_TURNS)]


async def _answer(llm: LLMBackend, history: list[Message], line: str, temperature: float,
                  max_new_tokens: int | None, interactive: bool) -> str | None:
    messages = [Message("system", SYSTEM_PROMPT), *history, Message("user", line)]
    request = Request(messages, max_new_tokens=max_new_tokens, temperature=temperature,
                      repetition_penalty=1.1)
    if interactive:
        sys.stdout.write("guru> ")
    try:
        async for event in llm.stream(request):
            if event.kind == "text":
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif event.kind == "done" and event.completion is not None:
                sys.stdout.write("\n")
                return event.completion.text
    except GuruError as exc:  # one bad turn must not end the session
        print(f"\n(error: {exc.user_message})")
    return None
