"""The processes a user starts: `python -m bot`, `guru generate`, `guru chat`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.paths import REPO


def run(args: list[str], env_extra: dict[str, str], stdin: str = "", timeout: int = 300):
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def test_bot_without_token_exits_nonzero_with_one_clear_sentence(tmp_path):
    result = run(["-m", "bot"], {"GURU_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_value_fails_at_start_naming_the_variable(tmp_path):
    result = run(["-m", "core.cli", "generate", "hi"], {"GURU_MAX_BATCH": "lots"})
    assert result.returncode == 2
    assert "GURU_MAX_BATCH" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.model
def test_generate_json_prints_one_object(test_data_dir, bundled_model):
    # bundled_model makes sure the converted weights exist in test_data_dir (fast reload).
    result = run(
        [
            "-m",
            "core.cli",
            "generate",
            "What is the capital of France?",
            "--max-new-tokens",
            "16",
            "--json",
        ],
        {"GURU_DATA_DIR": str(test_data_dir), "GURU_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(payload) == {"text", "tokens", "elapsed_s", "tokens_per_s"}
    assert "Paris" in payload["text"] and 0 < payload["tokens"] <= 16


@pytest.mark.model
def test_generate_rejects_an_empty_prompt_clearly(test_data_dir, bundled_model):
    result = run(
        ["-m", "core.cli", "generate", "  "],
        {"GURU_DATA_DIR": str(test_data_dir), "GURU_THREADS": "1"},
    )
    assert result.returncode == 2
    assert "empty" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.model
def test_chat_answers_piped_questions_on_the_embedded_defaults(
    test_data_dir, bundled_model, tmp_path
):
    # A fresh data dir for the database (embedded Postgres starts there); the model cache is
    # shared through a symlink so the converted weights are reused.
    (tmp_path / "models").symlink_to(test_data_dir / "models")
    result = run(
        ["-m", "core.cli", "chat", "--temperature", "0", "--max-new-tokens", "24"],
        {"GURU_DATA_DIR": str(tmp_path), "GURU_THREADS": "1"},
        stdin="What is the capital of France?\n/status\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "tokens generated" in result.stdout
