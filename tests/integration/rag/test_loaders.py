"""Every supported format loads; every kind of bad input is refused with one clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.rag.loaders import expand_paths, load_file
from tests.integration.rag.files import write_docx, write_pdf


def test_markdown_sections_keep_their_headings(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "# Server guide\n\nIntro.\n\n## Roles\n\nAsk a mod.\n```\n# not a heading\n```\n"
    )
    doc = load_file(str(path))
    assert doc.title == "Server guide"
    assert [s.heading for s in doc.sections] == ["Server guide", "Roles"]
    assert "# not a heading" in doc.sections[1].text


def test_html_text_is_split_at_headings_without_scripts(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Bot FAQ</title><script>var x=1;</script></head><body>"
        "<h1>Bot FAQ</h1><p>First answer.</p><h2>Voice</h2><p>Join #voice.</p>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    doc = load_file(str(path))
    assert doc.title == "Bot FAQ"
    assert [s.heading for s in doc.sections] == ["Bot FAQ", "Voice"]
    assert "var x" not in str(doc.sections)
    assert "one two" in doc.sections[1].text


def test_pdf_and_docx_load_through_llama_index_readers(tmp_path: Path) -> None:
    pdf = load_file(str(write_pdf(tmp_path / "a.pdf", "The raid starts at nine")))
    assert "raid starts at nine" in pdf.sections[0].text
    docx = load_file(str(write_docx(tmp_path / "b.docx", ["Meeting notes", "Ship on Friday"])))
    assert "Ship on Friday" in docx.sections[0].text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("image.png", b"\x89PNG\r\n", "unsupported file type .png"),
        ("noext", b"text", "unsupported file type (none)"),
        ("blob.txt", b"abc\x00\x01\x02", "binary file"),
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"   \n\n", "empty file"),
        ("latin1.txt", "café crème".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4 garbage", "PDF"),
        ("broken.docx", b"PK\x03\x04 not a zip", "unreadable DOCX"),
    ],
)
def test_bad_files_are_refused_with_a_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_file(str(path))


def test_pdf_without_text_layer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no text layer"):
        load_file(str(write_pdf(tmp_path / "scan.pdf", None)))


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 2000)
    with pytest.raises(InvalidInput, match="too large"):
        load_file(str(path), max_bytes=1000)


def test_directories_recurse_in_order_and_missing_paths_are_reported(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.md").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / ".hidden.txt").write_text("h")
    given = str(tmp_path)
    found = list(expand_paths([given, "/no/such/file"]))
    assert found == [
        (f"{given}/a.txt", None),
        (f"{given}/b/z.md", None),
        ("/no/such/file", "no such file or directory"),
    ]
