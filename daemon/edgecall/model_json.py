"""Models trained on the box are kept as JSON files (the reply and interest models).

Written beside and renamed into place, so a reader never sees half a model; read back
with the file and the reason in every error, so a broken file is reported, not fatal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def save_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def load_json(path: Path, schema: str, error: type[ValueError]) -> dict[str, Any]:
    """The file's object; `error` names the file and why when it is not a `schema` file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise error(f"{path}: not a {schema} file")
    return data
