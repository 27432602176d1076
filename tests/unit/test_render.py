"""bot/render.py: Discord's limits, code fences across splits, mentions, truncation markers."""

from __future__ import annotations

import discord

from bot import render
from core.rag.types import Answer, Source


def fences_balanced(chunk: str) -> bool:
    return sum(1 for line in chunk.splitlines() if line.strip().startswith("```")) % 2 == 0


def test_short_text_is_one_message_unchanged():
    assert render.split_message("hello\nworld") == ["hello\nworld\n"]
    assert [p.content for p in render.pages("hello")] == ["hello"]


def test_long_prose_splits_at_line_breaks_under_the_limit():
    text = "\n".join(f"line {i} " + "word " * 30 for i in range(200))
    chunks = render.split_message(text)
    assert len(chunks) > 1 and all(len(c) <= 2000 for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")
    assert all(c.endswith("\n") for c in chunks)  # never cut inside a line


def test_a_code_block_split_is_closed_and_reopened_with_its_language():
    code = "\n".join(f"    x{i} = {i} * 2  # some comment text" for i in range(150))
    text = f"Here is the program:\n```python\n{code}\n```\nThat's it."
    chunks = render.split_message(text)
    assert len(chunks) >= 2
    for chunk in chunks:
        assert len(chunk) <= 2000 and fences_balanced(chunk)
    assert chunks[1].startswith("```python\n")


def test_a_single_huge_line_is_cut_at_word_breaks():
    chunks = render.split_message("word " * 1000)
    assert all(len(c) <= 2000 for c in chunks) and len(chunks) >= 3
    assert all(not c.rstrip("\n").endswith("wor") for c in chunks)


def test_very_long_output_becomes_a_preview_and_a_file():
    text = "x " * 6000
    (page,) = render.pages(text)
    assert page.file is not None and page.file[1].decode() == text.strip()
    assert len(page.content) <= 2000 and "full answer is attached" in page.content


def test_mentions_are_neutralised():
    out = render.escape("hi @everyone and @here, <@123> <@!4> <@&5>")
    assert "@everyone" not in out and "@here" not in out
    assert "<@1" not in out and "<@!" not in out and "<@&" not in out
    assert out.replace("\u200b", "") == "hi @everyone and @here, <@123> <@!4> <@&5>"


def test_truncate_marks_the_cut():
    assert render.truncate("abc", 10) == "abc"
    cut = render.truncate("a" * 50, 20)
    assert len(cut) <= 20 and cut.endswith("(truncated)")


def test_stream_frame_shows_queue_then_text_within_the_limit():
    assert "position 3" in render.stream_frame("", queue_position=3)
    frame = render.stream_frame("y" * 5000)
    assert len(frame) <= 2000 and "continues" in frame
    assert fences_balanced(render.stream_frame("```py\nx = 1\n"))


def test_embeds_are_clamped_to_discord_limits():
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for _ in range(30):
        embed.add_field(name="n" * 300, value="v" * 2000)
    render.clamp_embed(embed)
    assert len(embed.title) <= 256 and len(embed.description) <= 4096
    assert len(embed.fields) <= 25 and all(len(f.value) <= 1024 for f in embed.fields)
    assert len(embed) <= 6000


def test_model_written_masked_links_show_their_urls():
    text = "Log in at [official login](https://evil.example/a_(b)) or [[docs]](<http://x.y>)."
    shown = render.unmask_links(text)
    assert (
        shown == "Log in at official login (<https://evil.example/a_(b)>) or [docs] (<http://x.y>)."
    )
    assert "](" not in render.unmask_links("[odd](http://a b) [x]()")  # no shape stays a link
    assert render.unmask_links("`[a](http://b)`") == "`[a](http://b)`"  # code is left alone


def test_answers_and_stream_frames_unmask_model_links_but_keep_source_links():
    answer = Answer(
        "Use [the portal](https://evil.example) [1].",
        (Source(1, "Guide", "https://wiki.example/guide", 0.9),),
        refused=False,
    )
    text = render.answer_text(answer)
    assert "the portal (<https://evil.example>)" in text
    assert "[Guide](<https://wiki.example/guide>)" in text
    frame = render.stream_frame("See [here](https://evil.example)")
    assert "here (<https://evil.example>)" in frame
