"""PAL code extraction: fenced or not, prose around it, several blocks, missing solution()."""

from __future__ import annotations

import pytest

from core.pal.extract import ExtractionError, code_blocks, extract_program

PROGRAM = "def solution():\n    apples = 3 * 4\n    return apples\n"


def test_fenced_block_with_prose_around_it() -> None:
    text = f"Sure! Here is the program:\n```python\n{PROGRAM}```\nIt returns 12."
    assert extract_program(text) == PROGRAM


def test_untagged_fence_and_py_tag() -> None:
    assert extract_program(f"```\n{PROGRAM}```") == PROGRAM
    assert extract_program(f"```py\n{PROGRAM}```") == PROGRAM


def test_unterminated_fence_cut_by_the_token_limit() -> None:
    assert extract_program(f"```python\n{PROGRAM}") == PROGRAM


def test_several_blocks_pick_the_one_defining_solution() -> None:
    text = (
        "First some setup:\n```python\nprint('hello')\n```\n"
        f"Then:\n```python\n{PROGRAM}```\nUsage:\n```python\nprint(solution())\n```"
    )
    assert extract_program(text) == PROGRAM


def test_non_python_blocks_are_ignored() -> None:
    text = f"```text\nThe answer is 12\n```\n```python\n{PROGRAM}```"
    assert code_blocks(text) == [PROGRAM.rstrip("\n")]


def test_program_split_over_blocks_is_joined() -> None:
    text = "```python\nPRICE = 3\n```\nand\n```python\nCOUNT = 4\n```"
    with pytest.raises(ExtractionError, match="does not define solution"):
        extract_program(text)  # joined, parsed, and then judged: still no solution()


def test_unfenced_code_with_prose_before_and_after() -> None:
    text = f"Let me think.\n{PROGRAM}\nThis function returns the number of apples."
    assert extract_program(text) == PROGRAM


def test_unfenced_code_with_import_first() -> None:
    text = "import math\n\ndef solution():\n    return math.floor(7 / 2)\nDone."
    assert extract_program(text).startswith("import math\n\ndef solution():")


def test_one_differently_named_function_is_used_as_solution() -> None:
    code = extract_program("```python\ndef count_girls():\n    return 10\n```")
    assert code.rstrip().endswith("solution = count_girls")


def test_missing_solution_is_a_message_for_the_model() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_program("```python\ndef helper(x):\n    return x\n```")
    assert "def solution():" in caught.value.user_message


def test_solution_with_required_arguments() -> None:
    with pytest.raises(ExtractionError, match="no arguments"):
        extract_program("```python\ndef solution(n):\n    return n * 2\n```")


def test_solution_with_defaults_is_fine() -> None:
    code = extract_program("```python\ndef solution(n=2):\n    return n\n```")
    assert "def solution(n=2)" in code


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ExtractionError, match="SyntaxError on line 2"):
        extract_program("```python\ndef solution():\n    return (3 +\n```")


@pytest.mark.parametrize("text", ["", "   \n", "The answer is 12.", "I cannot help with that."])
def test_no_code_at_all(text: str) -> None:
    with pytest.raises(ExtractionError):
        extract_program(text)


def test_long_prose_stays_fast() -> None:
    text = "x = 1 is what I said\n" + "words and more words\n" * 5000
    with pytest.raises(ExtractionError):
        extract_program(text)
