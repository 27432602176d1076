"""Instruction pairs for tuning: from uploaded JSONL and from approved answers.

A pair is one (conversation so far, wanted answer). Uploads are validated line by line and every
problem names its line, so a moderator can fix the file in one go; a file with any bad line is
refused as a whole (nothing is queued). Pairs are deduplicated on their normalised text and
split into train/eval by a hash of the text, so the same file always splits the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.interactions import TUNABLE_COMMANDS

__all__ = [
    "Pair",
    "parse_jsonl",
    "dedupe",
    "split_train_eval",
    "write_jsonl",
    "read_jsonl",
    "approved_pairs",
]

log = logging.getLogger(__name__)

MAX_PAIRS = 20_000  # a job's dataset travels in one jsonb value; keep it well below 1 GB
MAX_ERRORS_SHOWN = 10
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Pair:
    """A conversation (`messages`, role/content dicts, ending with a user turn) and its answer."""

    messages: tuple[tuple[str, str], ...]  # (role, content), system first if any
    output: str

    @property
    def key(self) -> str:
        """Identity for deduplication: whitespace- and case-insensitive."""
        text = "\x1e".join(f"{r}:{' '.join(c.split()).lower()}" for r, c in self.messages)
        return text + "\x1f" + " ".join(self.output.split()).lower()

    def chat(self) -> list[dict[str, str]]:
        """The prompt part in the chat-template shape."""
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_json(self) -> dict[str, Any]:
        return {"messages": [*self.chat(), {"role": "assistant", "content": self.output}]}


def _from_instruction(obj: dict[str, Any]) -> Pair:
    instruction, extra, output = obj.get("instruction"), obj.get("input", ""), obj.get("output")
    for name, value in (("instruction", instruction), ("output", output)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f'"{name}" must be a non-empty string')
    if extra is None:
        extra = ""
    if not isinstance(extra, str):
        raise ValueError('"input" must be a string when present')
    prompt = f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction.strip()
    return Pair((("user", prompt),), output.strip())


def _from_messages(messages: Any) -> Pair:
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError('"messages" must be a list of at least a user and an assistant turn')
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"messages[{i}] needs a role of {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise ValueError(f"messages[{i}] needs a non-empty string content")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"messages[{i}]: a system message may only come first")
        turns.append((m["role"], m["content"].strip()))
    if turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise ValueError("the last two messages must be a user turn, then the assistant's answer")
    return Pair(tuple(turns[:-1]), turns[-1][1])


def parse_line(text: str) -> Pair:
    """One JSONL record; ValueError says what is wrong with it."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    if "messages" in obj:
        return _from_messages(obj["messages"])
    if "instruction" in obj or "output" in obj:
        return _from_instruction(obj)
    raise ValueError('expected {"instruction", "input"?, "output"} or {"messages": [...]}')


def parse_jsonl(data: bytes | str, source: str = "the file") -> list[Pair]:
    """Every pair of an upload, in order; InvalidInput listing the bad lines if there is any."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
            ) from None
    pairs: list[Pair] = []
    errors: list[str] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pairs.append(parse_line(line))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        hidden = len(errors) - MAX_ERRORS_SHOWN
        more = f" (and {hidden} more)" if hidden > 0 else ""
        raise InvalidInput(
            f"{source} has {len(errors)} invalid line(s): {shown}{more}. "
            "Fix them and upload again; nothing was queued."
        )
    if not pairs:
        raise InvalidInput(f"{source} contains no examples; add one JSON object per line.")
    if len(pairs) > MAX_PAIRS:
        raise InvalidInput(f"{source} has {len(pairs)} examples; the limit is {MAX_PAIRS}.")
    return pairs


def dedupe(pairs: Iterable[Pair]) -> list[Pair]:
    """Pairs with repeats (same text up to case and spacing) removed, first occurrence kept."""
    seen: set[str] = set()
    out: list[Pair] = []
    for pair in pairs:
        if pair.key not in seen:
            seen.add(pair.key)
            out.append(pair)
    return out


def split_train_eval(
    pairs: list[Pair], eval_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Deterministic split by a hash of each pair: the same data always gives the same split.

    Small sets still get one eval pair (when there are at least two pairs); an eval pair is
    never also a train pair.
    """
    if len(pairs) < 2 or eval_fraction <= 0:
        return list(pairs), []
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(f"{seed}:{p.key}".encode()).digest())
    n_eval = min(len(pairs) - 1, max(1, round(len(pairs) * eval_fraction)))
    held = {p.key for p in ranked[:n_eval]}
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]


def write_jsonl(pairs: Iterable[Pair], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")


def read_jsonl(path: str) -> list[Pair]:
    with open(path, encoding="utf-8") as f:
        return parse_jsonl(f.read(), path)


_APPROVED = """
SELECT question, answer, prompt, model_answer FROM interactions
WHERE guild_id = %(guild_id)s AND feedback = 1 AND approved AND answer <> ''
  AND command = ANY(%(commands)s)
ORDER BY id LIMIT %(limit)s
"""


async def approved_pairs(pool: Any, guild_id: int, limit: int = MAX_PAIRS) -> list[Pair]:
    """Answers of this guild that got a 👍 and a moderator's approval (`interactions`, 0003;
    approved through core.tuning.review, 0006),
    from the commands in `TUNABLE_COMMANDS` (/ask, /explain; not /calc: see there).

    Each pair is the task the model really did: the messages the engine gave it (grounding
    rules, the guild's prompt, the numbered sources; migration 0009) and its own checked answer
    with its citations. Rows recorded before 0009 have no prompt: the question is replayed as
    a bare user turn with the answer shown.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            _APPROVED, {"guild_id": guild_id, "limit": limit, "commands": list(TUNABLE_COMMANDS)}
        )
        rows = await cur.fetchall()
    pairs = []
    for question, shown, prompt, model_answer in rows:
        if prompt is not None:  # the model's own task; a refusal or no answer teaches nothing
            if model_answer and model_answer.strip():
                messages = tuple((m["role"], m["content"]) for m in prompt)
                pairs.append(Pair(messages, model_answer.strip()))
        elif question.strip() and shown.strip():
            pairs.append(Pair((("user", question.strip()),), shown.strip()))
    return pairs
