"""Where Guru runs: Discord, the database, its data, the HTTP faces, fair use, logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config._vars import default_data_dir, env, non_negative_int, path, port, positive_int

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """Where Guru runs: Discord, the database, its data, the HTTP faces, fair use, logs."""

    discord_token: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "DISCORD_TOKEN",
            "Bot token; without it `scripts/run` opens `guru chat`.",
            secret=True,
        ),
    )
    database_url: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "DATABASE_URL",
            "External Postgres with pgvector; unset = embedded PostgreSQL 18 under the data dir.",
            secret=True,
        ),
    )
    data_dir: str = field(
        default_factory=default_data_dir,
        metadata=env(
            "GURU_DATA_DIR",
            "Where Guru keeps its database, converted models and adapters (default: the user data "
            "dir).",
            parse=path,
            shown=None,
        ),
    )
    discord_api_base: str = field(
        default="https://discord.com/api/v10",
        metadata=env(
            "DISCORD_API_BASE",
            "Discord REST base URL, API version included (a Discord-compatible server or the test "
            "emulator).",
        ),
    )
    discord_gateway_url: str = field(
        default="wss://gateway.discord.gg/",
        metadata=env(
            "DISCORD_GATEWAY_URL",
            "Discord gateway websocket URL; a non-default value also overrides the URL "
            "`/gateway/bot` returns.",
        ),
    )
    dev_guild_id: int | None = field(
        default=None,
        metadata=env(
            "GURU_DEV_GUILD",
            "Sync slash commands to this one guild id only (instant updates while developing); "
            "unset = global sync.",
            parse=positive_int,
        ),
    )
    serve_host: str = field(
        default="127.0.0.1",
        metadata=env(
            "GURU_SERVE_HOST",
            "Bind address of `guru serve`.",
        ),
    )
    serve_port: int = field(
        default=8088,
        metadata=env(
            "GURU_SERVE_PORT",
            "Port of `guru serve`.",
            parse=port,
        ),
    )
    serve_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "GURU_SERVE_API_KEY",
            "Bearer token clients of `guru serve` must send; unset = no auth, allowed only on a"
            " loopback GURU_SERVE_HOST.",
            secret=True,
        ),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=env(
            "GURU_METRICS_PORT",
            "Serve Prometheus metrics of the bot on this port; unset = no metrics endpoint.",
            parse=port,
        ),
    )
    metrics_host: str = field(
        default="127.0.0.1",
        metadata=env(
            "GURU_METRICS_HOST",
            "Bind address of the metrics endpoint (`0.0.0.0` exposes it to the network).",
        ),
    )
    user_requests_per_minute: int = field(
        default=5,
        metadata=env(
            "GURU_USER_REQUESTS_PER_MINUTE",
            "Fair use: /ask, /explain and /calc one person may run per minute in one server (an "
            "/explain heatmap counts as one more); a server's `/settings rate-limit` may only "
            "lower it. 0 = no limit.",
            parse=non_negative_int,
        ),
    )
    guild_requests_per_minute: int = field(
        default=20,
        metadata=env(
            "GURU_GUILD_REQUESTS_PER_MINUTE",
            "Fair use: the same commands all members of one server together may run per "
            "minute. 0 = no limit.",
            parse=non_negative_int,
        ),
    )
    tune_starts_per_hour: int = field(
        default=3,
        metadata=env(
            "GURU_TUNE_STARTS_PER_HOUR",
            "Fair use: `/tune start` per server per hour (besides one queued or running job "
            "per server). 0 = no limit.",
            parse=non_negative_int,
        ),
    )
    log_level: str = field(
        default="INFO",
        metadata=env(
            "GURU_LOG_LEVEL",
            "Python logging level.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
    )
