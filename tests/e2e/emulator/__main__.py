"""`python -m tests.e2e.emulator --port 8765`: run the emulator standalone, next to a real bot.

Start it, then the bot with DISCORD_API_BASE / DISCORD_GATEWAY_URL / DISCORD_TOKEN as printed.
Type slash commands on stdin (`/status`, `/ask question="what is RAG?"`), sent by the demo
guild's owner; every REST call the bot makes and every reply it gives is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from typing import Any

from tests.e2e.emulator.server import Emulator
from tests.e2e.emulator.state import Guild


def parse_command(line: str) -> tuple[str, dict[str, Any]]:
    """`/ask question="a b" n=3` → ("ask", {"question": "a b", "n": 3})."""
    name, *args = shlex.split(line.lstrip("/"))
    options: dict[str, Any] = {}
    for arg in args:
        key, _, value = arg.partition("=")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    return name, options


async def follow(emu: Emulator, guild: Guild, line: str) -> None:
    """Send one command and print the reply as it changes, until it stops changing for 5 s."""
    name, options = parse_command(line)
    try:
        inter = await emu.send_command(guild, emu.owner(guild), name, options)
    except AssertionError as exc:
        print(f"! {exc}", flush=True)
        return
    seen: list[tuple[int, int]] = []
    idle = 0.0
    while idle < 5.0:
        state = [(m.id, len(m.revisions)) for m in inter.messages]
        if state != seen:
            seen, idle = state, 0.0
            for msg in inter.messages:
                print(
                    f"[{msg.id}{' ephemeral' if msg.ephemeral else ''}] {msg.content!r}"
                    f"{' +' + str(len(msg.embeds)) + ' embeds' if msg.embeds else ''}",
                    flush=True,
                )
        await asyncio.sleep(0.25)
        idle += 0.25


async def main(port: int, token: str) -> None:
    emu = await Emulator(token=token).start(port)
    guild = await emu.create_guild("Guru demo")
    print(
        f"DISCORD_API_BASE={emu.api_base}\nDISCORD_GATEWAY_URL={emu.gateway_url}\n"
        f'DISCORD_TOKEN={token}\n# guild {guild.id}; type /status, /ask question="…"',
        flush=True,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode()
        if not line:
            await asyncio.Event().wait()  # stdin closed: keep serving until interrupted
        if line.strip().startswith("/"):
            asyncio.ensure_future(follow(emu, guild, line.strip()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="emulator-token")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(main(args.port, args.token))
    except KeyboardInterrupt:
        pass
