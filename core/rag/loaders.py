"""Read files into `ParsedDocument`s, refusing bad input with one clear reason each.

PDF and DOCX go through pypdf and docx2txt (what llama-index's file readers wrap, without
their 2 s import, which every isolated parse would pay). Text formats are decoded here,
strictly as UTF-8, because a generic reader would silently drop undecodable bytes; markdown
and HTML are split at their headings so each chunk keeps its section title. Every file is
bounded by `IngestLimits`: zip-based files are checked before unpacking, and text beyond
`max_chars` refuses the file (cut silently, a document would answer from half of itself).
Every function here is blocking: call it through `asyncio.to_thread`, or for files from
Discord through `core.rag.isolated`, which runs it in a limited subprocess.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from core.errors import InvalidInput
from core.rag.limits import IngestLimits, check_zip
from core.rag.types import ParsedDocument, Section

__all__ = [
    "SUPPORTED",
    "MAX_FILE_BYTES",
    "expand_paths",
    "load_file",
    "parse_markdown",
    "parse_html",
    "parse_text",
]

log = logging.getLogger(__name__)

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
ZIP_BASED = (".docx",)  # checked member by member before any parser opens them
MAX_FILE_BYTES = 20 * 1024 * 1024
# HTML is mostly markup: its source may be this many times the text cap before it is parsed.
_HTML_MARKUP_FACTOR = 5
_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "p", "pre", "ul", "ol", "dl", "table", "blockquote"]
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def expand_paths(paths: list[str]) -> Iterator[tuple[str, str | None]]:
    """(uri, error) for each file named or found below a named directory, in a stable order.

    The uri is the path as given (directories: joined with the relative path below them);
    hidden files and directories are skipped while recursing.
    """
    for given in paths:
        if os.path.isdir(given):
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield os.path.join(root, name), None
        elif os.path.isfile(given):
            yield given, None
        elif os.path.exists(given):
            yield given, "not a regular file"
        else:
            yield given, "no such file or directory"


def load_file(
    path: str, max_bytes: int = MAX_FILE_BYTES, limits: IngestLimits | None = None
) -> ParsedDocument:
    """Parse one file; raise InvalidInput naming what is wrong (type, size, encoding, empty,
    too much text, a zip bomb)."""
    limits = limits or IngestLimits()
    ext = Path(path).suffix.lower()
    if ext not in SUPPORTED:
        raise InvalidInput(
            f"unsupported file type {ext or '(none)'}; supported: " + " ".join(SUPPORTED)
        )
    size = os.path.getsize(path)
    if size > max_bytes:
        raise InvalidInput(f"file too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB)")
    if size == 0:
        raise InvalidInput("empty file")
    if ext in ZIP_BASED:
        check_zip(path, limits)
    if ext == ".pdf":
        doc = _load_pdf(path, limits.max_chars)
    elif ext == ".docx":
        doc = _load_docx(path)
    else:
        text = _read_utf8(path)
        if ext in (".html", ".htm"):
            _check_chars(len(text), limits.max_chars * _HTML_MARKUP_FACTOR, "HTML")
        else:
            _check_chars(len(text), limits.max_chars)
        if ext in (".md", ".markdown"):
            doc = parse_markdown(path, text)
        elif ext in (".html", ".htm"):
            doc = parse_html(path, text)
        else:
            doc = parse_text(path, text)
    if not any(s.text.strip() for s in doc.sections):
        raise InvalidInput("no text in the file")
    _check_chars(sum(len(s.text) for s in doc.sections), limits.max_chars)
    return doc


def _check_chars(count: int, limit: int, what: str = "text") -> None:
    if count > limit:
        raise InvalidInput(
            f"more than {limit:,} characters of {what}; split it into smaller files"
            " (the limit is GURU_INGEST_MAX_CHARS"
            + (f", x{_HTML_MARKUP_FACTOR} for HTML)" if what == "HTML" else ")")
        )


def _read_utf8(path: str) -> str:
    data = Path(path).read_bytes()
    if b"\x00" in data[:8192]:
        raise InvalidInput("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8"
        ) from None
    if not text.strip():
        raise InvalidInput("empty file (only whitespace)")
    return text


def _stem_title(path: str) -> str:
    return Path(path).stem.replace("_", " ").replace("-", " ").strip() or Path(path).name


def parse_text(uri: str, text: str, title: str | None = None) -> ParsedDocument:
    """Plain text: one section; the title is the first short line or the file name."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    guess = first if 0 < len(first) <= 80 else _stem_title(uri)
    return ParsedDocument(uri, title or guess, (Section("", text.strip()),))


def parse_markdown(uri: str, text: str) -> ParsedDocument:
    """Split at ATX headings (outside code fences); the first H1 is the title."""
    title, heading, buf, fenced = "", "", [], False
    sections: list[Section] = []
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            if "".join(buf).strip():
                sections.append(Section(heading, "\n".join(buf).strip()))
            buf, heading = [], match[2]
            if len(match[1]) == 1 and not title:
                title = match[2]
        else:
            buf.append(line)
    if "".join(buf).strip():
        sections.append(Section(heading, "\n".join(buf).strip()))
    return ParsedDocument(uri, title or _stem_title(uri), tuple(sections))


def parse_html(uri: str, text: str) -> ParsedDocument:
    """Visible text split at h1–h3; the title is <title> (or the first h1)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    sections: list[Section] = []
    heading, buf = "", []
    for node in body.find_all(_HTML_BLOCKS):
        if any(parent.name in _HTML_BLOCKS for parent in node.parents):
            continue  # inside a block we already take whole
        text_part = node.get_text(" ", strip=True).replace("\u00b6", "").strip()
        if not text_part:
            continue
        if node.name in ("h1", "h2", "h3", "h4"):
            if buf:
                sections.append(Section(heading, "\n".join(buf)))
            heading, buf = text_part, []
            title = title or (text_part if node.name == "h1" else "")
        else:
            buf.append(text_part)
    if buf:
        sections.append(Section(heading, "\n".join(buf)))
    if not sections and body.get_text(strip=True):
        sections.append(Section("", body.get_text(" ", strip=True)))
    return ParsedDocument(uri, _with_summary(title or _stem_title(uri), sections), tuple(sections))


def _with_summary(title: str, sections: list[Section]) -> str:
    """Man-page style pages ("NAME: git-stash - Stash the changes…") put their one-line summary
    in the title, so every chunk of the page carries what the page is about."""
    if sections and sections[0].heading.strip().upper() == "NAME":
        match = re.match(r"^\S+\s+-+\s+(.{3,150})$", " ".join(sections[0].text.split()))
        if match:
            return f"{title} — {match[1].rstrip('.')}"
    return title


def _load_pdf(path: str, max_chars: int) -> ParsedDocument:
    """Page by page, stopping as soon as the text is over `max_chars` (a PDF's streams are
    compressed too: its text can be far larger than the file)."""
    from pypdf import PdfReader

    sections: list[Section] = []
    chars = 0
    try:
        reader = PdfReader(path)
        for i, page in enumerate(reader.pages):
            text = (page.extract_text() or "").strip()
            chars += len(text)
            _check_chars(chars, max_chars)
            if text:
                sections.append(Section(f"page {_page_label(reader, i)}", text))
    except (InvalidInput, MemoryError):  # a memory cap is the isolated runner's to report
        raise
    except Exception as exc:  # pypdf raises many types for a damaged file
        raise InvalidInput(f"unreadable PDF ({type(exc).__name__})") from exc
    if not sections:
        raise InvalidInput("PDF has no text layer (scanned?); run OCR on it first")
    return ParsedDocument(path, _pdf_title(reader) or _stem_title(path), tuple(sections))


def _page_label(reader: object, index: int) -> str:
    try:
        return str(reader.page_labels[index])  # type: ignore[attr-defined]
    except Exception:  # a label is a nicety; malformed label trees are common
        return str(index + 1)


def _pdf_title(reader: object) -> str:
    try:
        meta = reader.metadata  # type: ignore[attr-defined]
        return (meta.title or "").strip() if meta else ""
    except Exception:  # a title is a nicety; the text already loaded
        return ""


def _load_docx(path: str) -> ParsedDocument:
    """docx2txt reads whole members into memory: `check_zip` has bounded them already."""
    import docx2txt

    try:
        text = docx2txt.process(path).strip()
    except MemoryError:
        raise
    except Exception as exc:  # docx2txt raises zipfile/KeyError on damaged files
        raise InvalidInput(f"unreadable DOCX ({type(exc).__name__})") from exc
    if not text:
        raise InvalidInput("DOCX has no text")
    return parse_text(path, text)
