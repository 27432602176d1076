from __future__ import annotations

import pytest

from core.config import VARIABLES, Settings
from core.errors import ConfigError
from core.llm.models.presets import DEFAULT_PRESET, PRESETS


def test_defaults_are_the_embedded_setup_and_the_most_correct_preset():
    settings = Settings.from_env({})
    assert settings.database_url is None and settings.llm_url is None
    # bench/answer_eval picked it (fewer confident errors at the same hit rate, p50 3 s)
    assert settings.model == "qwen2.5-coder-0.5b" == DEFAULT_PRESET and DEFAULT_PRESET in PRESETS
    assert settings.device == "auto" and settings.quantization == "none"
    assert settings.threads >= 1 and settings.max_batch == 8


def test_values_are_parsed_and_typed():
    settings = Settings.from_env(
        {
            "GURU_MAX_BATCH": "4",
            "GURU_TEMPERATURE": "0",
            "GURU_THREADS": "2",
            "GURU_DATA_DIR": "~/guru-data",
            "GURU_DTYPE": "bfloat16",
        }
    )
    assert settings.max_batch == 4 and settings.temperature == 0.0 and settings.threads == 2
    assert settings.dtype == "bfloat16" and not settings.data_dir.startswith("~")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GURU_MAX_BATCH", "zero"),
        ("GURU_MAX_BATCH", "0"),
        ("GURU_DEVICE", "tpu"),
        ("GURU_SERVE_PORT", "70000"),
        ("GURU_TEMPERATURE", "-1"),
        ("GURU_QUANTIZATION", "2bit"),
    ],
)
def test_invalid_values_fail_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({name: value})
    assert name in excinfo.value.user_message and value in excinfo.value.user_message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"GURU_MAX_BATCH": "x", "GURU_DEVICE": "y"})
    assert "GURU_MAX_BATCH" in excinfo.value.user_message
    assert "GURU_DEVICE" in excinfo.value.user_message


def test_secrets_stay_out_of_repr_and_describe():
    settings = Settings.from_env(
        {"DISCORD_TOKEN": "sekrit-token", "DATABASE_URL": "postgresql://u:pw@h/d"}
    )
    assert "sekrit" not in repr(settings) and "pw@" not in repr(settings)
    described = settings.describe()
    assert described["discord_token"] == "***" and described["database_url"] == "***"


def test_dotenv_file_is_read_and_real_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("GURU_MAX_BATCH=3\nGURU_MODEL=qwen2.5-coder-0.5b\n")
    monkeypatch.setenv("GURU_MODEL", "smollm2-135m")
    settings = Settings.from_env(env_file=str(env_file))
    assert settings.max_batch == 3 and settings.model == "smollm2-135m"


def test_every_variable_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [v.name for v in VARIABLES if f"`{v.name}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
