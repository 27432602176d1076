"""Citations are written where support is measured, and the sources' own words lead an answer
that misses them."""

from __future__ import annotations

import numpy as np
import pytest

from core.answering import PreparedAnswer
from core.llm.types import Message, Request
from core.rag.answer import (
    QWEN2_EXPLAIN_PROMPT,
    QWEN2_PROMPT,
    SYSTEM_PROMPT,
    build_messages,
    model_family,
)
from core.rag.attribute import (
    ASK_LEAD_WEIGHTS,
    EXPLAIN_LEAD_WEIGHTS,
    LEAD_CHARS,
    Lead,
    attribute,
    choose_lead,
    lead_candidates,
    passage_sentences,
)
from core.rag.grounding import Grounding
from core.rag.types import Source

CLANS = (
    "# Clans\n\nCreate a clan in game with `/clan create <name>`. Creating a clan costs 2,000 "
    "Cinders.\n\n- A clan has at most 12 members.\n- Clan chat is `/c <message>`.\n"
)
EVENTS = "# Events\n\nThe weekly raid starts every Friday at 20:00 UTC and lasts\ntwo hours."
GROUNDING = Grounding(
    (Source(1, "Clans", "docs/clans.md", 0.6), Source(2, "Events", "docs/events.md", 0.4)),
    (CLANS, EVENTS),
)


def test_each_sentence_cites_the_source_that_supports_it() -> None:
    text, cited = attribute(
        "Creating a clan costs 2,000 Cinders [2]. The weekly raid starts Friday at 20:00 UTC.",
        GROUNDING,
    )
    # the model's wrong [2] is replaced by the measured [1]; the raid sentence gets its [2]
    assert text == (
        "Creating a clan costs 2,000 Cinders [1]. The weekly raid starts Friday at 20:00 UTC [2]."
    )
    assert cited == {1, 2}


@pytest.mark.parametrize(
    "sentence",
    [
        "A clan has at most 20 members.",  # a number no source states
        "You can also tame a dragon mount in the northern mountains.",  # words no source has
        "Yes.",  # too little to measure
    ],
)
def test_no_citation_without_measured_support(sentence: str) -> None:
    assert attribute(sentence, GROUNDING) == (sentence, frozenset())


def test_a_citation_used_as_a_noun_does_not_leave_a_fragment() -> None:
    text, cited = attribute(
        "Creating a clan costs 2,000 Cinders. The full rules are at [1]. Then proceed to [2].",
        GROUNDING,
    )
    assert text == "Creating a clan costs 2,000 Cinders [1]."
    assert cited == {1}


def test_code_blocks_and_headings_are_left_as_they_are() -> None:
    answer = "## Clans\n```\n/clan create <name>\n```\nA clan has at most 12 members."
    text, cited = attribute(answer, GROUNDING)
    assert text == "## Clans\n```\n/clan create <name>\n```\nA clan has at most 12 members [1]."
    assert cited == {1}


def test_passage_sentences_join_wrapped_lines_and_keep_list_items_apart() -> None:
    assert passage_sentences(EVENTS) == [
        "The weekly raid starts every Friday at 20:00 UTC and lasts two hours."
    ]
    sentences = passage_sentences(CLANS)
    assert "A clan has at most 12 members." in sentences and "# Clans" not in sentences
    # chunks overlap: one that starts mid-sentence starts with a fragment, not a sentence
    assert passage_sentences("profile link and the date of the ban. Email appeals@x.gg now.") == [
        "Email appeals@x.gg now."
    ]
    long = passage_sentences("Word " * 200 + "end.")
    assert len(long) == 1 and len(long[0]) <= LEAD_CHARS


def test_passage_sentences_skip_chunk_ends_cut_mid_sentence_and_lines_of_links() -> None:
    # two chunks of one note, joined as a source's passage: the first was cut by the chunker
    passage = (
        "Tokens are integers. The model sees a few\n…\n"
        "Softmax makes probabilities.\n\n## See also\n\n"
        "- [Sampling: how the next token is picked](sampling.md)\n"
        "- [Embeddings](embeddings.md), [Reading an attention heatmap](attention-heatmaps.md)"
    )
    assert passage_sentences(passage) == ["Tokens are integers.", "Softmax makes probabilities."]
    # a man page's name line is complete without a full stop, even as a chunk's last line
    assert passage_sentences("git-clean - Remove untracked files from the working tree") == [
        "git-clean - Remove untracked files from the working tree"
    ]
    # a sentence that links as it speaks is still one
    linked = "Adapters are small, see [LoRA](lora.md) for the details."
    assert passage_sentences(linked) == [linked]


def _prepared(lead: Lead | None, mode: str = "fallback") -> PreparedAnswer:
    request = Request(messages=(Message("user", "q"),))
    return PreparedAnswer(
        "ask", "how much is a clan", 1, GROUNDING, None, request, lead=lead, lead_mode=mode
    )


CLOSE = Lead("Creating a clan costs 2,000 Cinders.", 1, 0.7)
FAR = Lead("Clan chat is `/c <message>`.", 1, 0.3)


def test_an_answer_its_sources_support_is_shown_without_the_lead() -> None:
    answer = _prepared(CLOSE).finish_text("Starting a clan costs 2,000 Cinders.")
    assert answer.answer == "Starting a clan costs 2,000 Cinders [1]." and not answer.refused


def test_an_answer_that_misses_its_sources_gets_the_lead_first() -> None:
    text = "A clan is a group of friends who chat together in the game every evening."
    answer = _prepared(CLOSE).finish_text(text)
    assert answer.answer.startswith("“Creating a clan costs 2,000 Cinders.” [1]\n\n")
    assert text in answer.answer
    always = _prepared(CLOSE, "always").finish_text("Starting a clan costs 2,000 Cinders.")
    assert always.answer.startswith("“Creating a clan costs 2,000 Cinders.” [1]")
    off = _prepared(CLOSE, "off").finish_text(text)
    assert "“" not in off.answer and off.answer.endswith("Sources: [1] [2]")


def test_an_answer_from_another_page_than_the_best_sentence_gets_the_lead_first() -> None:
    # supported by source [2], but the question is answered by [1]'s sentence
    answer = _prepared(CLOSE).finish_text("The weekly raid starts every Friday at 20:00 UTC.")
    assert answer.answer == (
        "“Creating a clan costs 2,000 Cinders.” [1]\n\n"
        "The weekly raid starts every Friday at 20:00 UTC [2]."
    )


def test_a_contradicting_answer_keeps_only_what_is_supported_after_the_lead() -> None:
    answer = _prepared(CLOSE).finish_text("A clan costs 500 Cinders. Clan chat is `/c <message>`.")
    assert answer.answer == (
        "“Creating a clan costs 2,000 Cinders.” [1]\n\nClan chat is `/c <message>` [1]."
    )


def test_a_refusal_or_unusable_text_becomes_the_lead_only_when_it_is_close() -> None:
    refused = "That is not in this server's docs."
    assert _prepared(CLOSE).finish_text(refused).answer == (
        "“Creating a clan costs 2,000 Cinders.” [1]"
    )
    assert _prepared(FAR).finish_text(refused).refused  # not close enough to answer
    unusable = _prepared(FAR)
    assert unusable.usable("[1]")  # no second generation: the lead answers
    assert unusable.finish_text("[1]").answer == "“Clan chat is `/c <message>`.” [1]"
    assert not _prepared(None).usable("[1]")


def test_the_prompt_follows_the_loaded_models_family() -> None:
    assert model_family("qwen2.5-coder-0.5b") == "qwen2"
    assert model_family("smollm2-135m") == "llama"
    assert model_family("Qwen/Qwen2.5-7B-Instruct") == "qwen2"
    assert model_family("/models/mystery.gguf") == ""
    qwen = build_messages("how much is a clan", GROUNDING, family="qwen2")
    assert qwen[0].content == QWEN2_PROMPT
    assert build_messages("q", GROUNDING, family="llama")[0].content == SYSTEM_PROMPT
    # /explain has its own rules on Qwen (concept notes, not a server's settings); others
    # keep the family's /ask prompt
    explained = build_messages("what is attention", GROUNDING, family="qwen2", explain=True)
    assert explained[0].content == QWEN2_EXPLAIN_PROMPT != QWEN2_PROMPT
    assert build_messages("q", GROUNDING, family="llama", explain=True)[0].content == SYSTEM_PROMPT


# A man page as git-doc's chunks read: its name line, a synopsis, prose about the command, an
# option with its description, a FAQ question, and the footer every page ends with.
BRANCH_PAGE = (
    "git-branch -\n   List, create, or delete branches\n"
    "git branch (-m | -M) [<oldbranch>] <newbranch>\n\n"
    "I want to tidy up my branch names. How do I do that?\n"
    "Branches are cheap in Git, so many projects keep a great number of them.\n"
    "With a -m or -M option, <oldbranch> will be renamed to <newbranch>.\n\n"
    "Part of the git(1) suite\n"
)
BRANCH = Grounding((Source(1, "git-branch(1)", "git-branch.html", 0.6),), (BRANCH_PAGE,))


def test_man_page_name_lines_are_sentences_and_questions_are_not() -> None:
    sentences = passage_sentences(BRANCH_PAGE)
    assert sentences[0] == "git-branch - List, create, or delete branches git branch (-m | -M) " + (
        "[<oldbranch>] <newbranch>"
    )
    assert not any(s.endswith("?") for s in sentences)  # a FAQ's question answers nothing
    # a code span's " ." ends a sentence in man-page text, so the option line stands alone
    assert (
        passage_sentences("Change it using git branch --set-upstream-to . With -m it moves.")[1]
        == "With -m it moves."
    )
    # a chunk that starts mid-sentence still loses its fragment
    assert passage_sentences("renamed to match the new one. With -d it is deleted.") == [
        "With -d it is deleted."
    ]


def _lead(question: str, cosines: dict[str, float]) -> Lead:
    """`choose_lead` over BRANCH's sentences with these cosines (any other sentence: 0.3)."""
    candidates = lead_candidates(BRANCH)
    similarity = np.array([cosines.get(text, 0.3) for _, _, text in candidates])
    return choose_lead(question, candidates, similarity)


def test_the_lead_prefers_the_option_line_over_closer_prose_and_boilerplate() -> None:
    option = "With a -m or -M option, <oldbranch> will be renamed to <newbranch>."
    prose = "Branches are cheap in Git, so many projects keep a great number of them."
    # MiniLM scores the footer and the prose about branches closest to "rename a branch";
    # the option line names the option and the question's own word ("renamed")
    cosines = {"Part of the git(1) suite": 0.62, prose: 0.6, option: 0.5}
    lead = _lead("how can i rename a branch", cosines)
    assert option in lead.text and "suite" not in lead.text and lead.n == 1
    assert lead.fact and lead.terms == 1.0  # "renam", "branc" both in it
    assert lead.similarity == pytest.approx(0.5)  # the best sentence's cosine, as measured
    # by cosine alone the footer would lead; a sentence far closer than the option line still
    # does (the page's next-best sentence may join it)
    far = _lead("how can i rename a branch", {prose: 0.9, option: 0.5})
    assert far.similarity == pytest.approx(0.9) and far.text.startswith(prose)


def test_a_vague_lead_does_not_answer_in_the_models_place() -> None:
    refused = "That is not in this server's docs."
    vague = Lead("You can go back and modify the old commit.", 1, 0.72, terms=0.33, fact=False)
    assert _prepared(vague).finish_text(refused).refused
    words = Lead("Greenvale and the towns are safe zones.", 1, 0.6, terms=0.67, fact=False)
    assert not _prepared(words).finish_text(refused).refused
    command = Lead("For example: $ git config credential.helper store", 1, 0.56, 0.2, True)
    assert _prepared(command).finish_text(refused).answer.startswith("“For example:")


def test_explain_leads_do_not_prefer_a_worked_examples_numbers() -> None:
    """A concept note's sentence with numbers is its worked example; /ask's weighting (stated
    facts pulled up) would quote it over the sentence that explains the idea."""
    question = "chain of thought vs writing a python program for word problems, which is better"
    idea = "PAL keeps the plan of chain of thought and hands the arithmetic to Python."
    example = "PAL beat chain of thought with PaLM-540B by about 15 percentage points on GSM8K."
    candidates = [(1, 0, idea), (2, 0, example)]  # two notes: one sentence is quoted
    similarity = np.array([0.60, 0.58])
    assert choose_lead(question, candidates, similarity, ASK_LEAD_WEIGHTS).text.startswith(
        "PAL beat"
    )
    assert choose_lead(question, candidates, similarity, EXPLAIN_LEAD_WEIGHTS).text.startswith(
        "PAL keeps"
    )
