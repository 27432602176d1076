"""`guru bench docx_bomb` (or `python -m bench.docx_bomb`): what a .docx bomb costs the bot.

Writes a valid .docx whose word/document.xml is `--megabytes` MiB of one repeated paragraph,
deflated to tens of KB (within Discord's upload limit a member could send hundreds), then
reads it the way the bot did before and does now, each in a fresh process so peak RSS is its
own:
- before: in the bot's process, llama-index's DocxReader (docx2txt, unbounded) + parse_text,
  what `load_file` did for a pinned attachment;
- after: `bot.docsource`'s path, `core.rag.isolated.parse_untrusted` with default limits: the
  zip check refuses it in a child process, and the child's own peak is reported too.
RSS growth = peak RSS (VmHWM) after minus RSS before the read, in MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run", "write_docx_bomb"]

_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def write_docx_bomb(path: Path, megabytes: int = 40) -> Path:
    """A valid .docx whose document.xml is `megabytes` MiB of one repeated paragraph."""
    para = "<w:p><w:r><w:t>" + "A" * 8000 + "</w:t></w:r></w:p>"
    count = (megabytes << 20) // len(para)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
            "</Types>",
        )
        with z.open("word/document.xml", "w") as member:
            member.write(f'<?xml version="1.0"?><w:document {_NS}><w:body>'.encode())
            block = (para * 128).encode()
            for _ in range(count // 128):
                member.write(block)
            member.write(b"</w:body></w:document>")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `guru bench docx_bomb`; shared with `python -m bench.docx_bomb`."""
    parser.add_argument("--megabytes", type=int, default=40, help="unpacked size (default 40)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def _measure(mode: str, path: str) -> dict[str, Any]:
    """One mode in this (fresh) process."""
    from core.errors import InvalidInput

    if mode == "before":
        from llama_index.readers.file import DocxReader

        from core.rag.loaders import parse_text
    else:
        import resource

        from core.rag.isolated import parse_untrusted
        from core.rag.limits import IngestLimits
        from core.rag.loaders import MAX_FILE_BYTES
    start_kib, started, result = _status_kib("VmRSS"), time.perf_counter(), "parsed"
    try:
        if mode == "before":
            docs = DocxReader().load_data(Path(path))
            doc = parse_text(path, "\n".join(d.text for d in docs).strip())
            result = f"parsed: {sum(len(s.text) for s in doc.sections):,} characters"
        else:
            asyncio.run(parse_untrusted(path, IngestLimits(), MAX_FILE_BYTES))
    except InvalidInput as exc:
        result = f"refused: {exc.user_message}"
    out = {
        "mode": mode,
        "rss_growth_mib": round((_status_kib("VmHWM") - start_kib) / 1024, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "result": result,
    }
    if mode == "after":
        out["child_peak_mib"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
    return out


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="guru-bomb-") as tmp:
        bomb = write_docx_bomb(Path(tmp) / "bomb.docx", args.megabytes)
        report: dict[str, Any] = {
            "file_kib": round(bomb.stat().st_size / 1024, 1),
            "unpacked_mib": args.megabytes,
        }
        for mode in ("before", "after"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.docx_bomb", "--_measure", mode, str(bomb)],
                capture_output=True,
                text=True,
                check=True,
            )
            report[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"docx bomb: {report['file_kib']} KiB -> {args.megabytes} MiB of document.xml")
    for mode in ("before", "after"):
        row = report[mode]
        child = f", child peak {row['child_peak_mib']} MiB" if "child_peak_mib" in row else ""
        print(
            f"  {mode:6}: bot process +{row['rss_growth_mib']} MiB RSS{child},"
            f" {row['seconds']} s; {row['result']}"
        )
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--_measure":
        print(json.dumps(_measure(sys.argv[2], sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
