"""`guru calc` input checks (before any model loads) and the choice of the /calc model."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.config import Settings
from core.pal.model import STRONG_CALC_RAM_GIB, calc_install_choice, calc_model_spec
from core.pal.prompt import EXAMPLES, SYSTEM, pal_messages, repair_messages


@pytest.mark.parametrize(
    "argv",
    [
        ["calc", ""],
        ["calc", "   "],
        ["calc", "2+2", "--samples", "0"],
        ["calc", "2+2", "--samples", "99"],
    ],
)
def test_bad_input_exits_2_with_a_message(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GURU_DATA_DIR", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("guru: ") and ("math word problem" in err or "--samples" in err)


def test_explicit_calc_model_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), calc_model="/models/mine.gguf")
    assert calc_model_spec(settings) == "/models/mine.gguf"


def test_remote_core_is_used_when_no_calc_model_is_set(tmp_path: Path) -> None:
    assert calc_model_spec(Settings(data_dir=str(tmp_path), llm_url="http://127.0.0.1:9")) is None


def test_an_installed_code_preset_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "qwen2.5-coder-0.5b.gguf").write_bytes(b"GGUF")  # present = installed
    assert calc_model_spec(Settings(data_dir=str(tmp_path))) in (
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
    )  # 1.5b where its packages are installed


def test_setup_installs_the_strongest_code_preset_only_where_memory_allows(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    assert calc_install_choice(settings, STRONG_CALC_RAM_GIB)[0] == "qwen2.5-coder-1.5b"
    chosen, why = calc_install_choice(settings, 8)
    assert chosen is None and "needs 16 GiB" in why and "8 GiB" in why
    named = Settings(data_dir=str(tmp_path), calc_model="qwen2.5-coder-0.5b")
    assert calc_install_choice(named, 8)[0] == "qwen2.5-coder-0.5b"  # the admin's choice wins
    remote = Settings(data_dir=str(tmp_path), llm_url="http://127.0.0.1:9")
    assert calc_install_choice(remote, 64)[0] is None
    assert calc_install_choice(Settings(calc_model="/models/mine.gguf"), 64)[0] is None


def test_env_var_is_read() -> None:
    settings = Settings.from_env({"GURU_CALC_MODEL": "qwen2.5-coder-1.5b"})
    assert settings.calc_model == "qwen2.5-coder-1.5b"
    assert Settings.from_env({}).calc_model is None


def test_prompt_is_few_shot_chat_turns() -> None:
    turns = pal_messages("How many legs do 3 cats have?")
    assert turns[0].role == "system" and turns[0].content == SYSTEM
    assert [t.role for t in turns[1:]] == ["user", "assistant"] * len(EXAMPLES) + ["user"]
    assert all("def solution():" in t.content for t in turns if t.role == "assistant")
    assert turns[-1].content.endswith("How many legs do 3 cats have?")


def test_repair_turn_shows_the_code_and_the_error() -> None:
    turns = repair_messages("p", "```python\ndef solution():\n    return x\n```", "NameError: x")
    assert turns[-2].role == "assistant" and "return x" in turns[-2].content
    assert turns[-1].role == "user" and "NameError: x" in turns[-1].content


async def test_calc_model_equal_to_the_core_model_reuses_its_engine(tmp_path: Path) -> None:
    from core.llm.models.loading import ModelCache
    from core.pal.model import open_calc_llm

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "qwen2.5-coder-0.5b.gguf").write_bytes(b"GGUF")
    settings = Settings(
        data_dir=str(tmp_path), model="qwen2.5-coder-0.5b", calc_model="qwen2.5-coder-0.5b"
    )
    core_llm = object()  # never called: only its identity matters here
    assert await open_calc_llm(settings, ModelCache(), core_llm) is core_llm  # type: ignore[arg-type]


def test_examples_bind_the_problem_numbers_and_compute() -> None:
    """Issue #17: the model copies how examples compute. Every number an example's problem
    gives is bound to a variable, no comment holds a number (no arithmetic in comments),
    and the returned value is computed, not a literal."""
    import re

    from core.pal.literal import literal_returns, problem_numbers

    assert "comments" in SYSTEM and "arithmetic" in SYSTEM
    for example in EXAMPLES:
        comments = [ln.split("#", 1)[1] for ln in example.code.splitlines() if "#" in ln]
        assert not any(re.search(r"\d", c) for c in comments), example.code
        assert not literal_returns(example.code, example.problem).literal
        bound = {float(m) for m in re.findall(r"^\s+\w+ = (\d+(?:\.\d+)?)$", example.code, re.M)}
        digits = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", example.problem)}
        assert digits <= bound, (example.problem, digits - bound)
        namespace: dict[str, object] = {}
        exec(example.code, namespace)  # noqa: S102 - our own example, checked to be right
        assert float(namespace["solution"]()) == float(example.answer)  # type: ignore[operator]
        assert problem_numbers(example.problem)


def test_the_v1_prompt_is_kept_for_the_bench() -> None:
    from bench.pal_prompt_v1 import V1

    turns = pal_messages("How many legs do 3 cats have?", V1)
    assert turns[0].content == V1.system != SYSTEM
    assert "# half a dozen is 6" in turns[4].content  # main's mental arithmetic, as it was
