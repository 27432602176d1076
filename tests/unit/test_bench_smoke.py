"""The benchmark's pure helpers: answer checks, loop detection, the quality verdict, the report.

The benchmark itself (`guru bench llm`) takes minutes and is not part of the suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import StreamTiming, aggregate
from bench.quality import (
    QUALITY_PROMPTS,
    compression_ratio,
    has_loop,
    is_correct,
    judge_path,
    repeated_ngrams,
)
from bench.report import render, summarize

REPO = Path(__file__).resolve().parents[2]


def _prompt(question: str) -> str:
    return next(q.pattern for q in QUALITY_PROMPTS if q.question == question)


def test_quality_set_is_big_enough_and_unique() -> None:
    questions = [q.question for q in QUALITY_PROMPTS]
    assert len(questions) >= 20
    assert len(set(questions)) == len(questions)


@pytest.mark.parametrize(
    ("question", "answer", "ok"),
    [
        ("What is the capital of France?", "The capital of France is Paris.", True),
        ("What is the capital of France?", "It is Lyon, not far from paris-ish", True),
        ("What is the capital of France?", "The capital is Lyon.", False),
        ("What is 2 + 2?", "The answer to this classic math problem is 4.", True),
        ("What is 2 + 2?", "Two plus two is four", True),
        ("What is 2 + 2?", "It is 44.", False),
        ("What is 2 + 2?", "About 4.5", False),
        ("What is the boiling point of water in degrees Celsius?", "about 100.0 degrees", True),
        ("What is the boiling point of water in degrees Celsius?", "it is 1000 degrees", False),
        ("What is the chemical formula of water?", "Water is H₂O.", True),
    ],
)
def test_answer_checker(question: str, answer: str, ok: bool) -> None:
    assert is_correct(answer, _prompt(question)) is ok


def test_repetition_detector() -> None:
    loop = "the cat sat on the mat " * 3
    assert repeated_ngrams(loop.split(), 4, 3)
    assert has_loop(loop.split())
    fluent = "The capital of France is Paris. It is known for the Eiffel Tower and museums."
    assert not has_loop(fluent.split(), fluent)
    # Twice is not a loop; a longer n-gram threshold ignores short stock phrases.
    assert not has_loop("a b c d x a b c d".split())
    phrase = (
        "in the end of the day we went home and in the end of the day we slept in the end of it"
    )
    assert has_loop(phrase.split(), n=4)
    assert not has_loop(phrase.split(), n=8)


def test_compression_ratio_flags_long_repetition() -> None:
    looping = "The refrigerator is a marvel of modern technology. " * 8
    assert compression_ratio(looping) > 3.0
    assert has_loop([], looping)  # caught by the ratio even without token repeats given
    fluent = (
        "Bread starts with flour, water, salt and yeast. Kneading builds gluten, which traps "
        "the gas the yeast makes, so the dough rises; the oven then sets the crumb and browns "
        "the crust through the Maillard reaction, giving colour and flavour."
    )
    assert compression_ratio(fluent) < 2.0
    assert not has_loop([], fluent)
    assert compression_ratio("") == 0.0


def test_judge_path_compares_with_fp32() -> None:
    reference = {"a": (True, False), "b": (True, False), "c": (False, False), "d": (True, True)}
    same = judge_path("bfloat16", reference, {"a": (True, False), "b": (True, False)})
    assert (same.correct, same.total, same.loops, same.passed) == (2, 2, 0, True)
    worse = judge_path("bfloat16", reference, {"a": (True, False), "b": (False, False)})
    assert not worse.passed and worse.wrong == ("b",)
    looping = judge_path("bfloat16", reference, {"a": (True, True), "b": (True, False)})
    assert looping.loops == 1 and not looping.passed
    more_long_loops = judge_path(
        "bfloat16", reference, {"a": (True, False), "b": (True, False)}, 2, 1
    )
    assert not more_long_loops.passed
    assert not judge_path("x", {}, {}).passed  # nothing to compare is not a pass


def test_stream_timing_and_aggregate() -> None:
    t = StreamTiming(started=10.0, first=10.5, ended=12.5, tokens=9)
    assert t.ttft_s == pytest.approx(0.5)
    assert t.decode_tps == pytest.approx(4.0)
    both = aggregate([t, StreamTiming(10.0, 11.0, 14.0, 12)])
    assert both["tokens"] == 21 and both["aggregate_tps"] == pytest.approx(21 / 4)
    assert both["ttft_max_s"] == pytest.approx(1.0)


def _ours(path: str, decode: float, agg8: float, quality: dict | None = None) -> dict:
    run = {
        "kind": "ours",
        "path": path,
        "load_s": 2.0,
        "import_s": 3.0,
        "peak_rss_mb": 1100.0,
        "single": {"ttft_s": 0.5, "decode_tps": decode, "tokens": 128},
        "ttft_long": {"ttft_s": 2.0},
        "concurrency": {"8": {"aggregate_tps": agg8, "min_tokens": 128, "ttft_median_s": 2.0}},
        "batch_loops": 1,
    }
    if quality is not None:
        run["quality"] = quality
    return run


def test_summary_ratios_targets_and_table() -> None:
    quality = {"short": {"q1": [True, False, "a"], "q2": [True, False, "b"]}, "long": []}
    results = [
        _ours("float32", 16.0, 60.0, quality),
        _ours("float32", 18.0, 64.0),
        _ours("float32", 17.0, 62.0),
        _ours(
            "bfloat16",
            20.0,
            170.0,
            {"short": {"q1": [True, False, "a"], "q2": [False, False, "c"]}, "long": []},
        ),
        {
            "kind": "llamacpp",
            "load_s": 0.1,
            "peak_rss_mb": 1000.0,
            "single": {"ttft_s": 1.0, "decode_tps": 80.0, "tokens": 128},
            "ttft_long": {"ttft_s": 4.0},
            "concurrency": {"8": {"aggregate_tps": 130.0, "min_tokens": 128}},
            "system_info": "CPU : AVX2 = 1 | AVX512 = 0",
        },
    ]
    report = summarize(results, ["float32", "bfloat16"], results[0])
    fp32 = report["paths"]["float32"]
    assert fp32["decode_tps"] == 17.0 and fp32["runs"] == 3
    assert fp32["ratios"]["single_vs_llamacpp"] == pytest.approx(17 / 80)
    assert fp32["targets"]["single_vs_llamacpp"]["passed"] is False
    assert fp32["targets"]["ttft_long_vs_llamacpp"]["value"] == pytest.approx(0.5)
    assert fp32["targets"]["ttft_long_vs_llamacpp"]["passed"] is True
    # aggregate@8 is judged against llama.cpp's own batch of 8, not its single stream.
    assert fp32["ratios"]["aggregate8_vs_llamacpp"] == pytest.approx(62 / 130)
    assert fp32["ratios"]["aggregate8_vs_llamacpp_single"] == pytest.approx(62 / 80)
    assert fp32["targets"]["aggregate8_vs_llamacpp"]["passed"] is False
    assert fp32["targets"]["rss_vs_llamacpp"]["passed"] is True  # 1100 <= 1.3 x 1000
    assert fp32["targets"]["quality"]["passed"] is True
    bf16 = report["paths"]["bfloat16"]
    assert bf16["targets"]["aggregate8_vs_llamacpp"]["passed"] is True  # 170 / 130 >= 1.25
    assert bf16["quality"]["passed"] is False and bf16["quality"]["wrong"] == ["q2"]
    assert bf16["targets"]["quality"]["passed"] is False
    assert bf16["quality"]["failures"] == [{"question": "q2", "answer": "c", "fp32": "b"}]
    report.update(
        model="m",
        threads=1,
        rounds=3,
        tokens=128,
        levels=[8],
        prompt_tokens="190–200",
        host={
            "cpus": 2,
            "loadavg_start": 1.0,
            "loadavg_end": 1.0,
            "loadavg_min": 0.5,
            "loadavg_max": 2.0,
        },
    )
    table = render(report)
    assert "ours float32" in table and "llama.cpp" in table and "FAIL" in table
    assert "130.0" in table and "AVX512 = 0" in table  # llama.cpp's batched row, its build


def test_summary_without_llamacpp_leaves_its_targets_unjudged() -> None:
    report = summarize([_ours("int4", 150.0, 180.0)], ["int4"], None)
    targets = report["paths"]["int4"]["targets"]
    assert targets["single_vs_llamacpp"]["passed"] is None
    assert targets["aggregate8_vs_llamacpp"]["passed"] is None
    assert targets["load_s"]["passed"] is True


def test_cli_passes_bench_options_to_the_benchmark() -> None:
    from core.cli import bench

    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "llm", "--quick", "--json", "--paths", "float32"])
    assert args.bench_name == "llm" and callable(args.handler)
    assert args.bench_args == ["--quick", "--json", "--paths", "float32"]


def test_the_product_cli_imports_no_benchmark_code() -> None:
    code = (
        "import sys; from core.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
