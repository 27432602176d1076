"""Settings: every environment variable Guru reads, parsed once into a frozen dataclass.

Each setting is written once: a field of one of the sections (`_service`, `_model`,
`_content`) whose default is the default, with its variable's name, help, parser and choices
as the field's metadata (`env(...)`). `Settings` joins the sections; `VARIABLES` is derived
from its fields, and the README's configuration table is generated from it
(`scripts/docs-config`). An invalid value fails at start with a message naming the variable
(`ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from core.config._content import ContentSettings
from core.config._model import ModelSettings
from core.config._service import ServiceSettings
from core.config._vars import ENGINE_ISAS, Var, force_offline_hub, load_env_file
from core.errors import ConfigError

__all__ = [
    "ENGINE_ISAS",
    "Settings",
    "VARIABLES",
    "Var",
    "force_offline_hub",
    "load_env_file",
]


# Fields come in reverse base order: the service's first, then the model's, then the content's.
@dataclass(frozen=True)
class Settings(ContentSettings, ModelSettings, ServiceSettings):
    """Process configuration; build it with `Settings.from_env()` (or directly in tests)."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, env_file: str | None = ".env"
    ) -> Settings:
        """Parse `env` (default: os.environ over `.env`); ConfigError names every bad variable."""
        if env is None:
            env = {**load_env_file(env_file), **os.environ}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = env.get(var.name)
            if raw is None or raw.strip() == "":
                continue  # the field's default
            raw = raw.strip()
            if var.choices and raw not in var.choices:
                problems.append(f"{var.name}={raw!r} is not one of: {', '.join(var.choices)}")
                continue
            try:
                values[var.attr] = var.parse(raw)
            except ValueError as exc:
                problems.append(f"{var.name}={raw!r} is invalid ({exc})")
        if problems:
            raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".")
        return cls(**values)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def describe(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked (for logs and reports)."""
        secret = {v.attr for v in VARIABLES if v.secret}
        return {
            f.name: ("***" if f.name in secret and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }


def _documented(value: Any) -> str | None:
    if value is None or value == ():
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _variables() -> tuple[Var, ...]:
    found = []
    for f in fields(Settings):
        var = f.metadata["env"]
        default = var.shown if f.default is MISSING else _documented(f.default)
        found.append(Var(**{**var.__dict__, "attr": f.name, "default": default}))
    return tuple(found)


# Every variable Guru reads, in the README's order.
VARIABLES: tuple[Var, ...] = _variables()
