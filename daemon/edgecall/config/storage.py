"""Where the appliance keeps state on disk."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgecall.config.base import ConfigModel


class StorageConfig(ConfigModel):
    state_dir: Path = Field(
        Path("/var/lib/edgecall"),
        description="Writable state directory (systemd StateDirectory): outbox, redial list, "
        "script statistics.",
    )
    recordings_dir: Path | None = Field(
        None,
        description="If set, caller audio of each call is kept here as WAV (mind privacy law).",
    )


class LoggingConfig(ConfigModel):
    level: str = Field(
        "INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="Minimum level logged.",
    )
    format: str = Field(
        "auto",
        pattern=r"^(auto|text|journal)$",
        description="'journal' sends structured fields (CALL_ID, EVENT) to journald; 'text' "
        "writes readable lines to stderr; 'auto' picks journal under systemd.",
    )
