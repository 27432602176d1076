"""The builder's corpora: real text on this machine that no benchmark set uses.

- pydocs: the long descriptions (README) of installed Python packages, from their
  `*.dist-info/METADATA` (discord.py, psycopg, peft, transformers, pytest, rich, …);
- debdocs: Debian's `/usr/share/doc/<package>/README*` files (gzip ones unpacked).

Each corpus is written as plain files into its own folder and ingested into its own bench guild
by the product's ingest, so chunks, titles and retrieval are exactly what a server would have.
Not git-doc, Emberfall or /explain's notes: the adapter is measured on those.
"""

from __future__ import annotations

import gzip
import re
import sysconfig
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

__all__ = ["Corpus", "CORPORA", "PYTHON_PACKAGES", "write_corpora"]

PYTHON_PACKAGES = (
    "discord.py",
    "psycopg",
    "psycopg-pool",
    "peft",
    "transformers",
    "llama-index-core",
    "pytest",
    "rich",
    "accelerate",
    "httpx",
    "aiohttp",
    "numpy",
    "click",
    "jinja2",
    "sentence-transformers",
    "safetensors",
    "tokenizers",
    "pytest-asyncio",
    "python-dotenv",
    "gguf",
)
MAX_DOC_CHARS = 40_000  # pydantic's description is 140 kB of changelog: the head is the manual
MIN_DOC_CHARS = 800


@dataclass(frozen=True)
class Corpus:
    name: str
    guild: int  # its bench guild in `guru_bench_grounded`


CORPORA = (Corpus("pydocs", 9101), Corpus("debdocs", 9102))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _dist_infos(site: Path) -> dict[str, Path]:
    """Normalised distribution name -> its dist-info directory."""
    found = {}
    for info in site.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[_slug(name)] = info
    return found


def python_docs(site: Path | None = None) -> dict[str, str]:
    """file name -> the package's long description (its README), for PYTHON_PACKAGES."""
    site = site or Path(sysconfig.get_paths()["purelib"])
    infos = _dist_infos(site)
    docs = {}
    for package in PYTHON_PACKAGES:
        info = infos.get(_slug(package))
        if info is None or not (info / "METADATA").exists():
            continue
        message = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        body = (message.get_payload() or message.get("Description") or "").strip()
        if len(body) >= MIN_DOC_CHARS:
            docs[f"{_slug(package)}.md"] = _clip(body)
    return docs


def debian_docs(root: Path = Path("/usr/share/doc"), limit: int = 40) -> dict[str, str]:
    """file name -> text of up to `limit` README files under `root`, in name order."""
    docs: dict[str, str] = {}
    for path in sorted(root.glob("*/README*")):
        if len(docs) >= limit:
            break
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, gzip.BadGzipFile):
            continue
        if MIN_DOC_CHARS <= len(text.strip()):
            name = f"{_slug(path.parent.name)}--{_slug(path.name.removesuffix('.gz'))}.txt"
            docs[name] = _clip(text.strip())
    return docs


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DOC_CHARS else text[:MAX_DOC_CHARS].rsplit("\n\n", 1)[0]


def write_corpora(out: Path) -> dict[str, Path]:
    """Each corpus's files under `out/<name>/` (rewritten only when changed); name -> folder."""
    folders = {}
    for corpus, docs in (("pydocs", python_docs()), ("debdocs", debian_docs())):
        folder = out / corpus
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in docs.items():
            path = folder / name
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
        folders[corpus] = folder
    return folders
