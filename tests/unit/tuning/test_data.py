"""Uploaded tuning data: every error names its line, duplicates go, the split is stable."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput
from core.tuning.data import Pair, dedupe, parse_jsonl, split_train_eval
from core.tuning.spec import LoraJobSpec


def test_both_record_shapes_become_pairs():
    text = "\n".join(
        [
            json.dumps({"instruction": "Name the mascot", "output": "Zorbly"}),
            json.dumps({"instruction": "Summarise", "input": "a long text", "output": "short"}),
            "",
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Be brief"},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"},
                    ]
                }
            ),
        ]
    )
    pairs = parse_jsonl(text)
    assert pairs[0] == Pair((("user", "Name the mascot"),), "Zorbly")
    assert pairs[1].messages == (("user", "Summarise\n\na long text"),)
    assert pairs[2].messages == (("system", "Be brief"), ("user", "Hi"))
    assert pairs[2].output == "Hello"


def test_every_bad_line_is_named_and_nothing_is_returned():
    lines = [
        json.dumps({"instruction": "ok", "output": "fine"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"instruction": "no answer"}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps(
            {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}
        ),
        json.dumps({"prompt": "wrong keys"}),
    ]
    with pytest.raises(InvalidInput) as caught:
        parse_jsonl("\n".join(lines), "data.jsonl")
    message = caught.value.user_message
    assert "data.jsonl has 6 invalid line(s)" in message
    for number in (2, 3, 4, 5, 6, 7):
        assert f"line {number}:" in message
    assert "line 1:" not in message
    assert "not valid JSON" in message and '"output" must be a non-empty string' in message
    assert "nothing was queued" in message


def test_empty_and_non_utf8_files_are_refused():
    with pytest.raises(InvalidInput, match="no examples"):
        parse_jsonl("\n\n")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        parse_jsonl(b"\xff\xfe{}")


def test_duplicates_differing_only_in_case_and_spacing_are_dropped():
    a = Pair((("user", "What is our mascot?"),), "Zorbly the purple otter.")
    b = Pair((("user", "what is  our mascot?"),), "Zorbly the PURPLE otter.")
    c = Pair((("user", "Who founded the server?"),), "Ada.")
    assert dedupe([a, b, c, a]) == [a, c]


def test_split_is_deterministic_disjoint_and_keeps_one_eval_pair():
    pairs = [Pair((("user", f"question {i}"),), f"answer {i}") for i in range(30)]
    train, held = split_train_eval(pairs, 0.1)
    assert (train, held) == split_train_eval(list(pairs), 0.1)
    assert len(held) == 3 and len(train) == 27
    assert not {p.key for p in train} & {p.key for p in held}
    assert split_train_eval(pairs[:3], 0.1)[1] and split_train_eval(pairs[:1], 0.1)[1] == []


def test_spec_round_trips_and_rejects_bad_options():
    spec = LoraJobSpec(qlora=True, rank=8, target_modules=("q_proj", "v_proj"))
    assert LoraJobSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InvalidInput, match="rank"):
        spec.replace(rank=0)
    with pytest.raises(InvalidInput, match="Unknown tuning option"):
        LoraJobSpec.from_dict({"rnak": 4})
