"""Who may read what (migration 0007): a document from a channel only for that channel's
viewers, an uploaded one guild-wide unless scoped to a channel or a role; never used, cited
or named to anyone else. Real Postgres and encoder; refusals need no model."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.answering import Answers
from core.errors import InvalidInput
from core.pins import DiscordMessage, ingest_message
from core.rag.ingest import Ingestor
from core.rag.kb import KnowledgeBase
from core.rag.types import Access, ParsedDocument, Section

SECRET_CHANNEL, PUBLIC_CHANNEL, STAFF_ROLE = 501, 502, 601
QUESTION = "What is the moderator meeting password?"


@pytest.fixture
async def guild(ingestor: Ingestor, new_guild: Callable[[], int]) -> int:
    guild = new_guild()
    for channel, message, text in (
        (SECRET_CHANNEL, 11, "The moderator meeting password this month is KUMQUAT-77."),
        (PUBLIC_CHANNEL, 12, "Community game night is every Saturday at 20:00."),
    ):
        msg = DiscordMessage(guild, channel, message, f"channel-{channel}", "owner", text)
        assert (await ingest_message(ingestor, msg, "pin")).status == "added"
    return guild


def sources(answers_prepared) -> list[str]:
    return [s.uri for s in answers_prepared.sources]


async def test_a_channels_document_is_only_for_its_viewers(
    answers_with: Callable[..., Answers], guild: int
) -> None:
    answers = answers_with(None)
    secret = f"https://discord.com/channels/{guild}/{SECRET_CHANNEL}/11"
    outsider = Access(frozenset({PUBLIC_CHANNEL}), frozenset())
    refused = await answers.prepare("ask", guild, QUESTION, access=outsider)
    assert secret not in sources(refused)
    assert refused.refusal is not None and "channel-501" not in refused.refusal.answer
    assert all("501" not in t for t in refused.refusal.closest_titles)

    viewer = Access(frozenset({SECRET_CHANNEL, PUBLIC_CHANNEL}), frozenset())
    found = await answers.prepare("ask", guild, QUESTION, access=viewer)
    assert sources(found)[0] == secret
    # the operator's CLI (access None) reads everything
    assert sources(await answers.prepare("ask", guild, QUESTION))[0] == secret


async def test_an_upload_is_guild_wide_until_scoped_to_a_role(
    answers_with: Callable[..., Answers], ingestor: Ingestor, retriever, guild: int
) -> None:
    doc = ParsedDocument(
        "upload:salaries.md", "Salaries", (Section("", "Staff salaries are paid on the 25th."),)
    )
    await ingestor.ingest_document(guild, doc)
    answers, question = answers_with(None), "When are staff salaries paid?"
    member = Access(frozenset({PUBLIC_CHANNEL}), frozenset())
    assert sources(await answers.prepare("ask", guild, question, access=member)) == [doc.uri]

    kb = KnowledgeBase(ingestor, retriever)
    await kb.scope(guild, doc.uri, None, STAFF_ROLE)
    assert doc.uri not in sources(await answers.prepare("ask", guild, question, access=member))
    staff = Access(frozenset({PUBLIC_CHANNEL}), frozenset({STAFF_ROLE}))
    assert sources(await answers.prepare("ask", guild, question, access=staff))[0] == doc.uri

    await kb.scope(guild, doc.uri, None, None)  # guild-wide again
    assert sources(await answers.prepare("ask", guild, question, access=member)) == [doc.uri]
    secret = f"https://discord.com/channels/{guild}/{SECRET_CHANNEL}/11"
    with pytest.raises(InvalidInput):  # a channel's document keeps its channel's rule
        await kb.scope(guild, secret, None, None)


async def test_existing_discord_rows_get_their_channel_from_the_jump_url(
    ingestor: Ingestor, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    async with ingestor.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO documents (guild_id, source, uri, content_hash, metadata)"
            " VALUES (%s, 'discord', %s, repeat('a', 64), '{}') RETURNING access_channel_id",
            (guild, f"https://discord.com/channels/{guild}/777/888#notes.md"),
        )
        assert (await cur.fetchone())[0] == 777
