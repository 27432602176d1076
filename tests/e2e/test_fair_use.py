"""Fair use through Discord: rapid /ask from one person and from a whole server, /calc and
/explain drawing on the same budget, and /settings unable to lift the host's limit.

`burst` is also the behaviour the README's "Fair use" paragraph quotes: run with
`python -m pytest tests/e2e/test_fair_use.py -q -o log_cli=true --log-cli-level=INFO` to see
how many requests were answered and refused, and the refusals' words.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from tests.e2e.conftest import finished, guild_ready
from tests.e2e.emulator import Emulator, Guild, Interaction, Member

log = logging.getLogger(__name__)

# Not in the (empty) docs: admitted asks are answered by the refusal path, without the model,
# so the test measures the limiter rather than the tiny model's speed.
QUESTION = "How do I bake sourdough bread?"


async def burst(
    emulator: Emulator, guild: Guild, members: list[Member], label: str
) -> tuple[list[Interaction], list[Interaction], Counter[str]]:
    """One /ask per entry of `members`, sent back to back; (answered, refused, refusals'
    words with the seconds masked)."""
    inters = [await emulator.send_command(guild, m, "ask", {"question": QUESTION}) for m in members]
    await emulator.wait_for(lambda: all(i.original for i in inters), 10, what="every reply")
    answered = [i for i in inters if i.deferred]
    refused = [i for i in inters if not i.deferred]
    for inter in answered:
        await finished(emulator, inter, 30)
    words = Counter(re.sub(r"\d+ s\b", "N s", i.original.content) for i in refused)
    log.info(
        "%s: %d /ask, %d answered, %d refused", label, len(inters), len(answered), len(refused)
    )
    for text, count in words.items():
        log.info("  %d x %s", count, text)
    return answered, refused, words


async def test_rapid_asks_from_one_person_are_refused_past_the_hosts_limit(bot, emulator):
    guild = await emulator.create_guild("fair-one")
    await guild_ready(bot, guild.id)
    member = emulator.add_member(guild, "eager")
    answered, refused, words = await burst(emulator, guild, [member] * 8, "one person")
    assert (len(answered), len(refused)) == (5, 3)  # GURU_USER_REQUESTS_PER_MINUTE = 5
    assert all(i.original.ephemeral for i in refused)
    assert list(words) == [
        "You can use Guru's model 5 times a minute on this server; try again in N s."
    ]
    match = re.search(r"in (\d+) s", refused[0].original.content)
    assert match and 55 <= int(match[1]) <= 60  # when the first of the five leaves the window


async def test_a_busy_server_is_held_to_its_share_and_others_are_unaffected(bot, emulator):
    busy, quiet = [await emulator.create_guild(n) for n in ("fair-busy", "fair-quiet")]
    for guild in (busy, quiet):
        await guild_ready(bot, guild.id)
    crowd = [emulator.add_member(busy, f"member-{n}") for n in range(24)]
    answered, refused, words = await burst(emulator, busy, crowd, "24 people, one server")
    assert (len(answered), len(refused)) == (20, 4)  # GURU_GUILD_REQUESTS_PER_MINUTE = 20
    assert list(words) == [
        "This server has used its share of Guru's model (20 a minute for everyone together); "
        "try again in N s."
    ]
    answered, refused, _ = await burst(
        emulator, quiet, [emulator.add_member(quiet, "calm")], "another server meanwhile"
    )
    assert len(answered) == 1 and not refused


async def test_ask_calc_and_explain_share_one_budget_per_person(bot, emulator, repo):
    guild = await emulator.create_guild("fair-shared")
    await guild_ready(bot, guild.id)
    await repo.set(guild.id, actor_id=None, rate_limit_per_minute=1)  # the server's own limit
    member = emulator.add_member(guild, "curious")
    first = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await finished(emulator, first, 30)
    later = [
        await emulator.send_command(guild, member, name, options)
        for name, options in (
            ("calc", {"problem": "What is 2 + 2?"}),
            ("explain", {"topic": "attention"}),
            ("ask", {"question": QUESTION}),
        )
    ]
    await emulator.wait_for(lambda: all(i.original for i in later), 5, what="the refusals")
    for inter in later:
        assert not inter.deferred and inter.original.ephemeral
        assert "1 time a minute on this server" in inter.original.content
    other = emulator.add_member(guild, "newcomer")  # each person has their own budget
    theirs = await emulator.send_command(guild, other, "ask", {"question": QUESTION})
    await finished(emulator, theirs, 30)
    assert theirs.deferred


async def test_settings_cannot_lift_the_hosts_limit(bot, emulator, repo):
    guild = await emulator.create_guild("fair-settings")
    await guild_ready(bot, guild.id)
    owner = emulator.owner(guild)
    inter = await emulator.send_command(
        guild, owner, "settings", {"rate-limit": {"per_minute": 50}}
    )
    await emulator.wait_for(lambda: inter.original is not None, 5, what="the refusal")
    assert inter.original.ephemeral and not inter.deferred
    assert "This host allows at most 5 a minute per person" in inter.original.content
    assert (await repo.get(guild.id)).rate_limit_per_minute is None
    show = await emulator.send_command(guild, owner, "settings", {"show": {}})
    await finished(emulator, show, 10)
    fields = {f["name"]: f["value"] for f in show.original.embeds[0]["fields"]}
    assert fields["Rate limit"] == "5 per person per minute (this host's default)"
    assert fields["Whole server"] == "20 per minute (set by the host)"
