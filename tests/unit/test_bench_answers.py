"""`guru bench answers`' scorer on crafted answers: facts, citations, loops, verdicts, sets."""

from __future__ import annotations

import pytest

from bench.answer_eval.harness import percentile, summarize
from bench.answer_eval.score import (
    cited_numbers,
    is_looping,
    missing_facts,
    normalize,
    score_answer,
    score_off_topic,
    states,
)
from bench.answer_eval.sets import SETS, load_set

SOURCES = ("/usr/share/doc/git-doc/git-reset.html", "/usr/share/doc/git-doc/git-stash.html")
FACTS = (("reset",), ("HEAD~", "HEAD^", "--soft"))


@pytest.mark.parametrize(
    ("text", "alternatives", "found"),
    [
        ("Run `git cherry-pick abc123` [1].", ["git cherry-pick"], True),
        ("Run GIT  CHERRY-PICK", ["git cherry-pick"], True),  # case, runs of spaces
        ("Use **git   stash**", ["git stash"], True),  # markdown emphasis
        ("Type \u201cgit tag v1.0\u201d", ['git tag v1.0"'], True),  # curly quotes
        ("It takes 100 days.", ["10"], False),  # word boundaries on numbers
        ("Wait 10 days.", ["10 days"], True),
        ("the stage area", ["tag"], False),
        ("The model hallucinates facts", ["hallucinat*"], True),  # a trailing * is a prefix
        ("git reset --soft HEAD~1", ["--soft"], True),  # a leading dash needs no boundary
        ("git reset HEAD~1", ["HEAD~"], True),
        ("Costs 2,000 Cinders", ["2000", "2,000"], True),
        ("Costs 2000 Cinders", ["2,000"], False),  # alternatives are spelled out, not guessed
        ("v1.01 is out", ["v1.0"], False),
        ("React with 🎁 to enter", ["🎁"], True),
        ("anything", ["", "  "], False),  # blank alternatives never match
    ],
)
def test_states(text: str, alternatives: list[str], found: bool) -> None:
    assert states(text, alternatives) is found


def test_normalize() -> None:
    assert normalize("  `Git`\u00a0\u2014 **Reset** ") == "git - reset"


def test_missing_facts_names_each_missing_fact_by_its_first_alternative() -> None:
    assert missing_facts("use git reset --soft", FACTS) == ()
    assert missing_facts("use git reset", FACTS) == ("HEAD~",)
    assert missing_facts("no idea", FACTS) == ("reset", "HEAD~")


def test_cited_numbers_keeps_real_sources_in_order_once() -> None:
    assert cited_numbers("See [2], and [1] and [2] again, not [7] or [0].", 2) == (2, 1)
    assert cited_numbers("no citations", 3) == ()
    # counting up past the sources is not citing them
    assert cited_numbers("06:00 UTC [1]\n" + "\n".join(f"[{n}]" for n in range(2, 30)), 3) == ()
    assert cited_numbers("see [1] and [5]", 3) == (1,)  # one slip is still a citation


@pytest.mark.parametrize(
    ("text", "looping"),
    [
        ("", True),
        ("   \n ", True),
        ("The answer is no. " * 5, True),
        ("Run git reset --soft HEAD~1 [1]. It keeps your changes staged.", False),
        # a command stated twice is not a loop
        ("Use git config --global user.name X and git config --global user.email Y.", False),
        ("abcabcabcabc " * 40, True),  # compresses far too well
        # echoing the question's 5-word phrase three times is clumsy, not a loop
        (
            "To create a zip or tarball, run git archive. You create a zip or tarball of HEAD "
            "with --format=zip; to create a zip or tarball of a tag, name the tag.",
            False,
        ),
        ("--force " * 8, True),
    ],
)
def test_is_looping(text: str, looping: bool) -> None:
    assert is_looping(text) is looping


def _score(answer: str, raw: str | None, refused: bool = False, gold: tuple[str, ...] = ()):
    return score_answer(
        answer=answer,
        raw=raw,
        refused=refused,
        facts=FACTS,
        source_uris=SOURCES,
        gold=gold or ("git-reset.html",),
    )


def test_verdict_correct_and_cited() -> None:
    raw = "Run `git reset --soft HEAD~1` [1]."
    s = _score(raw, raw)
    assert (s.verdict, s.cited, s.cites_gold, s.missing) == ("correct_cited", (1,), True, ())


def test_verdict_correct_but_citing_a_non_gold_source() -> None:
    raw = "Run git reset --soft HEAD~1 [2]."
    assert _score(raw, raw).verdict == "correct_uncited"


def test_appended_sources_line_is_not_a_citation() -> None:
    # finish_answer appends "Sources: [1] [2]" when the model cited nothing: that is ours.
    raw = "Run git reset --soft HEAD~1."
    s = _score(raw + "\n\nSources: [1] [2]", raw)
    assert (s.verdict, s.cited, s.attributed_gold) == ("correct_uncited", (), False)


def test_cited_after_attribution_is_its_own_measure() -> None:
    # the model wrote no [n]; the answer shown carries the [1] attribution measured
    s = _score("Run git reset --soft HEAD~1 [1].", "Run git reset --soft HEAD~1.")
    assert (s.verdict, s.cites_gold, s.attributed_gold) == ("correct_uncited", False, True)


def test_verdict_confidently_wrong() -> None:
    raw = "Use git stash [2]."
    s = _score(raw, raw)
    assert (s.verdict, s.missing) == ("wrong", ("reset", "HEAD~"))


def test_verdict_wrongly_refused_by_the_floor_and_by_the_model() -> None:
    floor = _score("That is not in this server's docs.", None, refused=True)
    assert floor.verdict == "wrongly_refused"
    model = _score("That is not in this server's docs.", "That is not in this server's docs", True)
    assert model.verdict == "wrongly_refused"


def test_verdict_empty_or_looping() -> None:
    # empty model text: finish_answer calls it a refusal, the bench calls it empty
    assert _score("That is not in this server's docs.", "", refused=True).verdict == (
        "empty_or_looping"
    )
    loop = "git reset HEAD~1 is the answer. " * 4
    assert _score(loop, loop).verdict == "empty_or_looping"
    # a loop finish_answer's line dedup removed is not what the reader sees
    raw = "git reset --soft HEAD~1 [1]\n" * 4
    assert _score("git reset --soft HEAD~1 [1]", raw).verdict == "correct_cited"


def test_off_topic_verdicts() -> None:
    assert score_off_topic(answer="That is not in this server's docs", refused=True).verdict == (
        "refused"
    )
    s = score_off_topic(answer="The answer is no. " * 5, refused=False)
    assert (s.verdict, s.missing) == ("answered", ("(looping)",))


def _row(
    verdict: str,
    *,
    off: bool = False,
    held: bool = False,
    secs: float = 1.0,
    attributed: bool = False,
    answer: str = "An answer [1].",
) -> dict:
    return {
        "verdict": verdict,
        "off_topic": off,
        "held_out": held,
        "model_called": verdict != "wrongly_refused",
        "refused": verdict in ("wrongly_refused", "refused"),
        "answer": answer,
        "seconds": secs,
        "missing": [],
        "completion_tokens": 10,
        "attributed_gold": attributed,
    }


def test_summarize_rates_halves_and_latency() -> None:
    rows = [
        _row("correct_cited"),
        _row("wrong", held=True, secs=3.0, attributed=True),  # cited, but a fact is missing
        _row("wrongly_refused"),
        _row("correct_cited", held=True, secs=2.0, answer="x" * 40),
        _row("correct_uncited", held=True, attributed=True),
        _row("refused", off=True),
        _row("answered", off=True),
    ]
    s = summarize(rows)
    assert s["questions"] == 5 and s["pct"]["correct_cited"] == 40.0
    assert s["held_out_half"]["counts"] == {
        "empty_or_looping": 0,
        "wrongly_refused": 0,
        "correct_cited": 1,
        "correct_uncited": 1,
        "wrong": 1,
        # every fact AND a gold [n] in the text shown: only the uncited one that attribution cited
        "correct_attributed": 1,
    }
    assert s["answer_chars_p50"] == 14.0  # of the 4 answers shown: 14, 14, 40, 14 characters
    assert s["off_topic"]["refused"] == 1 and s["off_topic"]["refused_pct"] == 50.0
    assert s["latency_s"]["p50"] == 1.0 and s["latency_s"]["answers"] == 6


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


@pytest.mark.parametrize("name", [s for s in SETS if s != "git"] + ["git"])
def test_sets_have_facts_gold_and_the_odd_half_held_out(name: str) -> None:
    qset = load_set(name)
    answerable = qset.answerable
    assert len(answerable) >= 24 and len(qset.off_topic) >= 8
    assert all(i.facts and all(f for f in i.facts) and i.gold for i in answerable)
    assert [i.held_out for i in answerable[:4]] == [False, True, False, True]
    assert len({i.id for i in qset.items}) == len(qset.items)
    if qset.corpus is not None and name == "emberfall":
        pages = {p.name for p in qset.corpus.glob("*.md")}
        assert 15 <= len(pages) <= 30
        assert {g for i in answerable for g in i.gold} <= pages


def test_report_renders_rows_and_markdown() -> None:
    from bench.answer_eval.report import markdown_row, render

    entry = {"rows_file": "x.jsonl", **summarize([_row("correct_cited"), _row("wrong", held=True)])}
    report = {
        "model": "m",
        "date": "d",
        "threads": 1,
        "load_before": (1.0, 2.0, 3.0),
        "peak_rss_gib": None,
        "sets": {"git": {"shipped": entry}},
    }
    text = render(report)
    assert "git / shipped" in text and "held-out half" in text and "50%" in text
    assert markdown_row("m", "git", "shipped", entry).startswith(
        "| m | git | shipped | 50% (0%) | 0% (0%) |"
    )


def test_the_lead_table_counts_gold_quotes_and_stated_facts_per_weighting() -> None:
    import numpy as np

    from bench.answer_eval.lead import Case, table
    from bench.answer_eval.sets import Item

    item = Item("g08", "how can i rename a branch", (("-m",),), ("git-branch.html",))
    candidates = [
        (1, 0, "Part of the git(1) suite"),
        (2, 0, "With a -m option, <oldbranch> will be renamed to <newbranch>."),
    ]
    # page 2 is gold; by cosine alone the footer of page 1 is quoted
    case = Case("git", item, frozenset({2}), candidates, np.array([0.6, 0.5]))
    lines = [line.split() for line in table([case]).splitlines() if line.startswith("git ")]
    rows = {cells[1] + cells[2]: cells[-2:] for cells in lines}
    assert rows["0.0,0.0"] == ["0/1", "0/1"]
    assert rows["0.15,0.2"] == ["1/1", "1/1"]
