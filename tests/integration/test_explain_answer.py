"""/explain on the real stack: notes synced into guild 0, retrieval, refusal, the CLI contract.

Real embedded Postgres, the real encoder, and the bundled model where answers matter. The
full notes are ingested once into a database of this module; edit/delete tests use a temp
copy of a few notes in a fresh database, so they never disturb the shared one.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.answering import Answers
from core.cli import main
from core.config import Settings
from core.db.pool import Database, Pool, open_pool
from core.explain.answer import OUT_OF_SCOPE, concept_retriever, explain_grounder
from core.explain.kb import ConceptSync, note_uri, sync_concepts
from core.explain.topics import CONCEPTS_DIR
from core.llm.engine.engine import Engine
from core.llm.models.loading import LoadedModel
from core.rag.embedder import Embedder
from core.rag.ingest import Ingestor
from core.rag.types import CONCEPTS_GUILD_ID
from core.services import Services
from tests.fixtures.db import create_migrated_database

pytestmark = pytest.mark.slow

NOTES = sorted(p.name for p in CONCEPTS_DIR.glob("*.md"))


@pytest.fixture(scope="module")
async def explain_url(pg_url: str) -> str:
    return await create_migrated_database(pg_url, "guru_explain")


@pytest.fixture(scope="module")
async def explain_pool(explain_url: str) -> AsyncIterator[Pool]:
    pool = await open_pool(explain_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def first_sync(explain_pool: Pool, embedder: Embedder) -> ConceptSync:
    """Every note ingested once for the module (the expensive part: embedding ~23 notes)."""
    return await sync_concepts(Ingestor(explain_pool, embedder))


async def chunk_ids(pool: Pool) -> dict[str, list[int]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.uri, c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE c.guild_id = %(g)s ORDER BY d.uri, c.position",
            {"g": CONCEPTS_GUILD_ID},
        )
        rows = await cur.fetchall()
    ids: dict[str, list[int]] = {}
    for uri, chunk_id in rows:
        ids.setdefault(uri, []).append(chunk_id)
    return ids


async def test_notes_are_ingested_once_and_a_second_sync_is_a_fast_no_op(
    first_sync: ConceptSync, explain_pool: Pool, embedder: Embedder
) -> None:
    assert not first_sync.errors
    assert sorted(first_sync.added + first_sync.unchanged) == [note_uri(n) for n in NOTES]
    before = await chunk_ids(explain_pool)
    assert set(before) == {note_uri(n) for n in NOTES} and all(before.values())

    started = time.perf_counter()
    again = await sync_concepts(Ingestor(explain_pool, embedder))
    assert time.perf_counter() - started < 2.0
    assert not again.changed and len(again.unchanged) == len(NOTES)
    assert await chunk_ids(explain_pool) == before  # nothing rewritten


async def test_an_edited_note_replaces_its_chunks_and_a_deleted_one_is_removed(
    fresh_pool: Pool, embedder: Embedder, tmp_path: Path
) -> None:
    notes = tmp_path / "concepts"
    notes.mkdir()
    for name in ("softmax.md", "masking.md", "peft.md"):
        shutil.copy(CONCEPTS_DIR / name, notes / name)
    pool = fresh_pool
    ingestor = Ingestor(pool, embedder)
    assert len((await sync_concepts(ingestor, notes)).added) == 3
    before = await chunk_ids(pool)

    with (notes / "softmax.md").open("a", encoding="utf-8") as f:
        f.write("\n\n## Mnemonic\n\nRemember softmax as the ZEBRAFOO-42 squash.\n")
    (notes / "masking.md").unlink()
    sync = await sync_concepts(ingestor, notes)
    assert sync.replaced == (note_uri("softmax.md"),)
    assert sync.removed == (note_uri("masking.md"),)
    assert sync.unchanged == (note_uri("peft.md"),)

    after = await chunk_ids(pool)
    assert set(after) == {note_uri("softmax.md"), note_uri("peft.md")}
    assert after[note_uri("peft.md")] == before[note_uri("peft.md")]
    assert not set(after[note_uri("softmax.md")]) & set(before[note_uri("softmax.md")])
    hits = await concept_retriever(pool, embedder).search(
        CONCEPTS_GUILD_ID, "ZEBRAFOO-42 squash", 3, "text"
    )
    assert hits and hits[0].uri == note_uri("softmax.md")


async def test_an_empty_concepts_directory_is_an_error_not_a_mass_delete(
    explain_pool: Pool, embedder: Embedder, first_sync: ConceptSync, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        await sync_concepts(Ingestor(explain_pool, embedder), tmp_path)
    assert len(await chunk_ids(explain_pool)) == len(NOTES)


@pytest.mark.parametrize(
    ("question", "note"),
    [
        ("why doesnt the bot know about stuff that happened last month??", "knowledge-cutoff.md"),
        (
            "whats the point of dividing by sqrt(d_k) in attention?",
            "scaled-dot-product-attention.md",
        ),
        ("what does the r in lora actually mean and how big should i set it", "lora.md"),
        ("whats nucleus sampling", "sampling.md"),
        ("what is RoPE and why do llama models use it", "positional-encoding.md"),
        ("why did everyone stop using LSTMs for language", "rnn-vs-transformers.md"),
    ],
)
async def test_learner_questions_find_their_note_in_the_top_three(
    first_sync: ConceptSync, explain_pool: Pool, embedder: Embedder, question: str, note: str
) -> None:
    hits = await concept_retriever(explain_pool, embedder).search(
        CONCEPTS_GUILD_ID, question, 3, "hybrid"
    )
    assert note_uri(note) in [h.uri for h in hits]


async def test_the_note_a_question_is_about_becomes_source_one(
    first_sync: ConceptSync, explain_pool: Pool, embedder: Embedder
) -> None:
    """Search alone ranks knowledge-cutoff.md first for a question about PAL; the notes'
    cards (title, headings, first paragraph) put pal.md first. Ordering only reorders: the
    same notes are sources either way."""
    question = "why does the bot write python code for word problems instead of just answering"
    grounder = explain_grounder(explain_pool, embedder)
    grounding, _ = await grounder.ground(CONCEPTS_GUILD_ID, question)
    assert grounding is not None and grounding.sources[0].uri == note_uri("pal.md")
    grounder.card_weight = 0  # search alone
    plain, _ = await grounder.ground(CONCEPTS_GUILD_ID, question)
    assert plain is not None and plain.sources[0].uri != note_uri("pal.md")
    assert {s.uri for s in plain.sources} == {s.uri for s in grounding.sources}


@pytest.mark.parametrize(
    "question",
    [
        "how do i bake sourdough bread",
        "what are the rules of this server",
        "how do i undo the last git commit",
    ],
)
async def test_questions_outside_the_curriculum_are_refused_without_the_model(
    first_sync: ConceptSync, explain_answers: Callable[..., Answers], question: str
) -> None:
    prepared = await explain_answers(None).prepare("explain", None, question)
    assert prepared.request is None and prepared.refusal is not None
    assert prepared.refusal.refused and prepared.refusal.answer == OUT_OF_SCOPE
    assert "/ask" in OUT_OF_SCOPE and prepared.sources == ()


@pytest.fixture
def guru(
    explain_url: str,
    test_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str, str]]:
    """`guru ARGS…` in-process on this module's database; (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", explain_url)
    monkeypatch.setenv("GURU_DATA_DIR", str(test_data_dir))
    monkeypatch.setenv("GURU_DEVICE", "cpu")
    monkeypatch.setenv("GURU_THREADS", "1")
    monkeypatch.setenv("GURU_LOG_LEVEL", "WARNING")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_refuses_out_of_scope_as_json(
    first_sync: ConceptSync, guru: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, _ = guru("explain", "who won the world cup in 2018", "--json")
    assert code == 0
    assert json.loads(out) == {"answer": OUT_OF_SCOPE, "sources": [], "refused": True}


def test_cli_rejects_an_empty_question(guru: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = guru("explain", "   ")
    assert code == 2 and "empty" in err


@pytest.fixture(scope="module")
async def engine(bundled_model: LoadedModel) -> AsyncIterator[Engine]:
    engine = Engine(bundled_model, max_batch=2)
    yield engine
    await engine.aclose()


@pytest.fixture
def explain_answers(
    model_settings: Settings, explain_pool: Pool, embedder: Embedder
) -> Callable[..., Answers]:
    """The answering path on this module's database, with `llm` as the chat model."""
    return lambda llm: (
        Services(model_settings, llm=llm, db=Database(explain_pool), embedder=embedder).answers
    )


@pytest.mark.model
async def test_explain_answers_from_the_notes_with_citations(
    first_sync: ConceptSync, explain_answers: Callable[..., Answers], engine: Engine
) -> None:
    question = "what does the r in lora mean and how big should i set it"
    answer = await explain_answers(engine).answer("explain", None, question)
    assert not answer.refused
    assert note_uri("lora.md") in [s.uri for s in answer.sources]
    assert {s.title for s in answer.sources} >= {"LoRA: low-rank adaptation"}
    cited = {int(n) for n in re.findall(r"\[(\d)\]", answer.answer)}
    assert cited and cited <= {s.n for s in answer.sources}


@pytest.mark.model
def test_cli_answers_as_json_with_note_sources(
    first_sync: ConceptSync, guru: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, _ = guru("explain", "whats nucleus sampling", "--json")
    result = json.loads(out)
    assert code == 0 and set(result) == {"answer", "sources", "refused"}
    assert result["refused"] is False and result["answer"].strip()
    assert set(result["sources"][0]) == {"n", "title", "uri", "score"}
    assert note_uri("sampling.md") in [s["uri"] for s in result["sources"]]
