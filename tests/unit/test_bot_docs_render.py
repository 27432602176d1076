"""Pure pieces of the bot's docs and answers: message-link parsing, source links, code blocks."""

from __future__ import annotations

import pytest

from bot import render
from bot.docsource import MessageRef, parse_message_refs
from bot.errors import Refused
from core.rag.types import Answer, Source

GUILD, CHANNEL = 111111111111111111, 222222222222222222


def test_message_links_and_bare_ids_become_refs_in_order_without_duplicates():
    link = f"https://discord.com/channels/{GUILD}/333333333333333333/444444444444444444"
    refs = parse_message_refs(f"{link} 555555555555555555, {link}", GUILD, CHANNEL)
    assert refs == [
        MessageRef(333333333333333333, 444444444444444444),
        MessageRef(CHANNEL, 555555555555555555),
    ]


def test_a_link_into_another_guild_is_refused():
    with pytest.raises(Refused, match="another server"):
        parse_message_refs(f"https://discord.com/channels/9/{CHANNEL}/1", GUILD, CHANNEL)


def test_text_without_links_or_ids_is_refused_with_a_hint():
    with pytest.raises(Refused, match="Copy Message Link"):
        parse_message_refs("the pinned one please", GUILD, CHANNEL)


def test_sources_are_links_for_urls_and_code_for_uploads():
    answer = Answer(
        "Fridays [1].",
        (
            Source(1, "Meetups [draft]", "https://discord.com/channels/1/2/3", 0.9),
            Source(2, "FAQ", "upload:faq.md", 0.5),
        ),
        False,
    )
    assert render.answer_text(answer) == (
        "Fridays [1].\n\n**Sources**\n"
        "[1] [Meetups  draft](<https://discord.com/channels/1/2/3>)\n"
        "[2] FAQ (`upload:faq.md`)"
    )
    refusal = Answer("That is not in this server's docs.", (), True, ("FAQ",))
    assert render.answer_text(refusal) == refusal.answer


def test_code_blocks_cannot_be_closed_by_the_code_and_survive_a_split():
    block = render.code_block("s = '```'\n" + "x = 1\n" * 600)
    assert block.startswith("```py\n") and block.count("```") == 2
    chunks = render.split_message(block)
    assert len(chunks) > 1 and all(c.count("```") % 2 == 0 for c in chunks)
    assert all(len(c) <= render.MESSAGE_LIMIT for c in chunks)
