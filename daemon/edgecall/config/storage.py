"""Where the appliance keeps state on disk."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgecall.config.base import ConfigModel


class StorageConfig(ConfigModel):
    state_dir: Path = Field(
        Path("/var/lib/edgecall"),
        description="Writable state directory (systemd StateDirectory): outbox, redial list, "
        "do-not-call list, script statistics.",
    )
    dnc_file: str = Field(
        "dnc.sqlite",
        min_length=1,
        description="SQLite file of the do-not-call list (numbers never dialled), relative "
        "to state_dir. It is the record of who asked not to be called: include it in backups.",
    )
    history_file: str = Field(
        "history.sqlite",
        min_length=1,
        description="SQLite file of the call history (every call, turn and prompt; what the "
        "box learns from), relative to state_dir. Created mode 0600: it holds personal data.",
    )
    history_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Calls older than this many days are deleted from the history "
        "(checked hourly). `edgecall forget NUMBER` erases one person's calls at once.",
    )
    recordings_dir: Path | None = Field(
        None,
        description="If set, each call's caller audio is kept here as a 16 kHz WAV named "
        "<UTC start>-<call id>.wav (relative to state_dir; mind privacy law). Nothing "
        "deletes them: rotate them with your own job.",
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
