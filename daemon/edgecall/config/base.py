"""Shared base for every config model.

Every section forbids unknown keys (a typo in `config.yaml` is an error, not a
silently ignored setting) and every field carries a description, which
`tests/unit/test_config.py` enforces.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class ConfigModel(BaseModel):
    """Base class: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(ConfigModel):
    """Where a secret comes from; the value itself is never written in config.yaml.

    Exactly one of `env`, `credential` or `file` is set. `credential` names a file
    in systemd's `$CREDENTIALS_DIRECTORY` (see `LoadCredential=` in the unit).
    """

    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    credential: str | None = Field(
        None,
        description="Name of a systemd credential (a file in $CREDENTIALS_DIRECTORY).",
    )
    file: Path | None = Field(None, description="Path of a file whose content is the secret.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [n for n in ("env", "credential", "file") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of env, credential, file")
        return self

    def resolve(self) -> SecretStr:
        """Read the secret now; raises SecretError naming the source, never the value."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        if self.credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise SecretError(
                    f"credential {self.credential!r} requested but "
                    "$CREDENTIALS_DIRECTORY is not set"
                )
            return _read_secret_file(Path(directory) / self.credential)
        assert self.file is not None
        return _read_secret_file(self.file)


class SecretError(Exception):
    """A configured secret could not be read; the message never contains the secret."""


def _read_secret_file(path: Path) -> SecretStr:
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None


class FieldError(ValueError):
    """A validation error that knows which field, below the validated model, is wrong.

    Raised from model validators so that `check-config` can point at the line of
    the offending key instead of the start of the section.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class FieldErrors(ValueError):
    """Several FieldErrors found by one validator (e.g. every broken link of a flow), so
    `check-config` reports each at its own line instead of only the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def whole_number_or_auto(value: object, most: int, what: str) -> object:
    """A setting that takes "auto" or 1..most, checked here so that a mistake gives one
    clear message rather than one per member of the union."""
    if value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most:
        return value
    raise ValueError(f"a number of {what} from 1 to {most}, or auto; not {value!r}")
