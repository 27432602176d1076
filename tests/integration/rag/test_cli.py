"""The knowledge base's CLI contract: `guru ingest/docs/guild/search/ask` on a real database."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli import main
from tests.integration.rag.corpus import write_corpus


@pytest.fixture
def guru(
    rag_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run `guru ARGS…` in-process against the test database; (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", rag_url)
    monkeypatch.setenv("GURU_LOG_LEVEL", "WARNING")

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_ingest_search_list_remove_forget(
    guru: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    root = write_corpus(tmp_path)
    (root / "bad.txt").write_bytes(b"\xff\xfe bad")
    guild = "940000000000000001"
    code, out, _ = guru("ingest", str(root), str(root / "missing.md"), "--guild", guild, "--json")
    report = json.loads(out)
    assert code == 1 and report["summary"]["added"] == 12 and report["summary"]["error"] == 2
    assert {f["uri"] for f in report["files"] if f["status"] == "error"} == {
        str(root / "bad.txt"),
        str(root / "missing.md"),
    }
    code, out, _ = guru("ingest", str(root / "raids.md"), "--guild", guild)
    assert code == 0 and out.startswith("unchanged")

    code, out, _ = guru(
        "search",
        "-",
        "--guild",
        guild,
        "-k",
        "2",
        "--mode",
        "text",
        stdin="why do I get QX-1474\n\nraid sign up\n",
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [ln["query"] for ln in lines] == ["why do I get QX-1474", "raid sign up"]
    first = lines[0]["results"][0]
    assert set(first) == {"document_id", "title", "uri", "score", "text"}
    assert first["uri"] == str(root / "error-QX-1474.md")

    code, out, _ = guru("docs", "list", "--guild", guild, "--json")
    docs = json.loads(out)
    assert len(docs) == 12
    raids = next(d for d in docs if d["uri"].endswith("raids.md"))
    code, out, _ = guru("docs", "remove", str(raids["id"]), "--guild", "940000000000000002")
    assert code == 2  # another guild cannot remove it
    code, out, _ = guru("docs", "remove", str(raids["id"]), "--guild", guild)
    assert code == 0 and "Removed document" in out
    code, _, err = guru("docs", "remove", raids["uri"], "--guild", guild)
    assert code == 2 and "No document" in err

    code, out, _ = guru("guild", "forget", guild, "--json")
    assert code == 0 and json.loads(out)["deleted"]["documents"] == 11
    code, _, err = guru("docs", "list", "--guild", guild)
    assert code == 2 and "Unknown guild" in err
    code, _, err = guru("guild", "forget", guild)
    assert code == 2


def test_ask_refuses_as_json_without_loading_the_model(
    guru: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    guild = "940000000000000003"
    guru("ingest", str(write_corpus(tmp_path)), "--guild", guild)
    code, out, _ = guru("ask", "What is the capital of Australia?", "--guild", guild, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["refused"] is True and answer["sources"] == []
    assert "not in this server's docs" in answer["answer"]
    code, _, err = guru("ask", "anything", "--guild", "940000000000000099")
    assert code == 2 and "Unknown guild" in err


def test_bad_guild_argument_is_a_usage_error(guru: Callable[..., tuple[int, str, str]]) -> None:
    with pytest.raises(SystemExit) as exc:
        guru("search", "x", "--guild", "abc")
    assert exc.value.code == 2
