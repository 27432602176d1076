"""Retrieved text as data: delimiting sources and neutralising instruction-like text in them.

A document can say anything. Three layers keep it from steering the model: (1) the sources sit
in one block whose delimiters a document cannot forge (we strip them, and chat-template tokens,
from the text); (2) the system prompt says the block holds no instructions; (3) sentences that
address an assistant ("ignore previous instructions", "you are now…", "system:") are replaced
by a visible marker before the model sees them, because a 135M model copies what it reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

__all__ = ["render_sources", "neutralize", "strip_delimiters", "REMOVED"]

log = logging.getLogger(__name__)

REMOVED = "[instruction-like text removed]"
_FENCE = '"""'
_TEMPLATE_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]|<<</?SYS>>>?", re.IGNORECASE)
_DELIMITERS = re.compile(r'"{3,}|<{3,}|>{3,}|`{3,}')
_INSTRUCTION = re.compile(
    r"""(\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,60}
          \b(instructions?|prompts?|rules|guidelines|above|previous|prior|context|sources?)\b)
      | \b(new|updated)\s+instructions?\b
      | \byou\s+(are\s+now|must\s+now|will\s+now|should\s+now)\b
      | \b(system\s+prompt|jailbreak|developer\s+mode)\b
      | ^\s*(system|assistant|user)\s*:
      | \b(respond|reply|answer|say)\s+(only\s+)?(with|exactly)\b""",
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")


def strip_delimiters(text: str) -> str:
    """Remove what could forge or close a source block (for the user's own question)."""
    return _DELIMITERS.sub(" ", _TEMPLATE_TOKENS.sub(" ", text))


def neutralize(text: str) -> str:
    """`text` with template tokens and our delimiters removed and instruction-like sentences
    replaced by `REMOVED`."""
    text = strip_delimiters(text)
    if not _INSTRUCTION.search(text):
        return text
    out: list[str] = []
    removed = 0
    for sentence in _SENTENCE.findall(text):
        if sentence and _INSTRUCTION.search(sentence):
            out.append(REMOVED + ("\n" if sentence.endswith("\n") else " "))
            removed += 1
        else:
            out.append(sentence)
    log.info("neutralised %d instruction-like sentence(s) in retrieved text", removed)
    return "".join(out).strip()


def render_sources(sources: Sequence[tuple[int, str, str]]) -> str:
    """Numbered sources, each fenced in triple quotes (which are stripped from the text)."""
    return "\n\n".join(
        f"Source [{n}] ({neutralize(title)}):\n{_FENCE}\n{neutralize(text)}\n{_FENCE}"
        for n, title, text in sources
    )
