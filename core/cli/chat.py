"""`guru chat`: talk to Guru in a terminal, no Discord needed.

This is what `scripts/run` opens when DISCORD_TOKEN is unset. It uses the same `Services` as
the bot (embedded database, local model or GURU_LLM_URL). Lines starting with `/` are console
commands: the bot's /ask, /calc, /explain and /docs (core.cli._console) for one local server,
`--guild` (default 1: `guru ingest PATH --guild 1` gives /ask something to cite), plus /help,
/reset, /status and /quit. Everything else is a chat turn. Works with piped input too (one
turn per line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from core.cli._rag import guild_id
from core.config import Settings
from core.errors import GuruError
from core.guilds import CONSOLE_GUILD_ID
from core.llm.types import LLMBackend, Message, Request
from core.services import Services

if TYPE_CHECKING:
    from core.cli._console import Console

SYSTEM_PROMPT = "You are Guru, a helpful assistant for a Discord community. Answer briefly."
HISTORY_TURNS = 6  # earlier turns are dropped so the prompt stays well inside the context
HELP = (
    "Commands: {commands}, /help, /reset (forget the conversation), /status, /quit. "
    "Anything else is a chat turn."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with Guru in this terminal (no Discord needed)")
    p.add_argument("--temperature", type=float, default=None, help="default: GURU_TEMPERATURE")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N")
    p.add_argument(
        "--guild",
        type=guild_id,
        default=CONSOLE_GUILD_ID,
        metavar="G",
        help="whose documents /ask and /docs use (default %(default)s, the console's "
        "own: `guru ingest PATH --guild %(default)s`)",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from core.cli._console import COMMANDS_HELP, Console  # core services: import when used

    interactive = sys.stdin.isatty()
    if interactive:
        print("Starting Guru (database and model)…", flush=True)
    services = await Services.open(settings)
    try:
        assert services.llm is not None
        stats = services.llm.stats()
        if interactive:
            print(
                f"Guru is ready: {stats.model} on {stats.device}. "
                f"{HELP.format(commands=COMMANDS_HELP)}",
                flush=True,
            )
        await _loop(services, Console(services, args.guild), args, settings, interactive)
    finally:
        await services.aclose()
    return 0


async def _loop(
    services: Services,
    console: Console,
    args: argparse.Namespace,
    settings: Settings,
    interactive: bool,
) -> None:
    from core.cli._console import COMMANDS_HELP

    assert services.llm is not None
    llm = services.llm
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
            print(HELP.format(commands=COMMANDS_HELP))
        elif line == "/reset":
            history.clear()
            print("(conversation forgotten)")
        elif line == "/status":
            s = llm.stats()
            print(
                f"model {s.model} ({s.backend}, {s.device}); active {s.active}, queued {s.queued}; "
                f"{s.tokens_generated} tokens generated, {s.recent_tokens_per_s:.1f} tok/s recently"
            )
        elif console.handles(line):
            await _command(console, line, interactive)
        elif line.startswith("/") and " " not in line:
            print(f"(unknown command {line}; /help lists them)")
        else:
            answer = await _answer(
                llm, history, line, temperature, args.max_new_tokens, interactive
            )
            if answer is not None:
                history += [Message("user", line), Message("assistant", answer)]
                del history[: max(0, len(history) - 2 * HISTORY_TURNS)]


async def _command(console: Console, line: str, interactive: bool) -> None:
    """One /ask, /calc, /explain or /docs; a failing one prints why and the session goes on."""
    if interactive:
        print("(working…)", flush=True)
    try:
        await console.run(line)
    except GuruError as exc:
        print(f"(error: {exc.user_message})")
    sys.stdout.flush()


async def _answer(
    llm: LLMBackend,
    history: list[Message],
    line: str,
    temperature: float,
    max_new_tokens: int | None,
    interactive: bool,
) -> str | None:
    messages = [Message("system", SYSTEM_PROMPT), *history, Message("user", line)]
    request = Request(
        messages, max_new_tokens=max_new_tokens, temperature=temperature, repetition_penalty=1.1
    )
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
