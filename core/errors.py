"""Domain errors. Each carries a short, user-safe message that says what to do next."""

from __future__ import annotations

__all__ = [
    "GuruError",
    "ConfigError",
    "InvalidInput",
    "NotFound",
    "Busy",
    "NotAllowed",
    "ModelLoadError",
    "DatabaseError",
    "MigrationError",
    "BackendError",
]


class GuruError(Exception):
    """Base class: `user_message` is safe to show to a Discord user or CLI user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigError(GuruError):
    """A setting is missing or invalid; the message names the variable."""


class InvalidInput(GuruError):
    """The request itself is wrong (empty prompt, too long, unknown option)."""


class NotFound(GuruError):
    """A named thing (guild, document, model, adapter) does not exist."""


class Busy(GuruError):
    """The queue is full; try again shortly."""


class NotAllowed(GuruError):
    """The caller lacks the permission for this action."""


class ModelLoadError(GuruError):
    """A model could not be resolved or loaded; the message names what was tried."""


class DatabaseError(GuruError):
    """The database could not be reached or started."""


class MigrationError(DatabaseError):
    """A migration failed; the message names the file and the statement."""


class BackendError(GuruError):
    """A remote LLM backend failed or answered something unexpected."""
