"""Load YAML files into pydantic models, reporting every mistake as `FILE:LINE:COL: field: message`.

Field technicians edit `config.yaml` by hand; a message that names the line is
the difference between a two-minute fix and a support call. The YAML is parsed
with ruamel.yaml in round-trip mode because it keeps the position of every key
and item; pydantic's error locations are then walked down that tree. The same
loader serves replay files, so they report errors the same way.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from edgecall.config.base import FieldError, FieldErrors

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a YAML file, positioned for humans (1-based line and column)."""

    file: Path
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """The file could not be loaded; `issues` holds every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def load_model(path: Path, model: type[M]) -> M:
    """Parse `path` and validate it as `model`; raise ConfigError listing every problem."""
    tree = read_yaml(path)
    try:
        return model.model_validate(to_plain(tree))
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(path, tree, model, exc)) from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file keeping node positions; syntax errors become ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(path, 1, 1, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([ConfigIssue(path, line, col, "", f"YAML syntax: {problem}")]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"YAML syntax: {exc}")]) from None
    if tree is None:
        raise ConfigError([ConfigIssue(path, 1, 1, "", "file is empty")])
    if not isinstance(tree, CommentedMap):
        raise ConfigError([ConfigIssue(path, 1, 1, "", "top level must be a mapping of sections")])
    return tree


def to_plain(node: Any) -> Any:
    """ruamel's round-trip types as plain dict/list/str/int/float for pydantic."""
    if isinstance(node, dict):
        return {
            str(k) if not isinstance(k, int | bool) else k: to_plain(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def issues_from_validation(
    path: Path, tree: Any, model: type[BaseModel], exc: ValidationError
) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        message = err["msg"]
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldErrors):
            for sub in error.errors:
                line, col = position(tree, loc + sub.path)
                issues.append(ConfigIssue(path, line, col, dotted(loc + sub.path), str(sub)))
            continue
        if isinstance(error, FieldError):
            loc = loc + error.path
            message = str(error)
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(model, loc)
        elif err["type"] == "missing":
            message = "required key is missing"
        line, col = position(tree, loc)
        issues.append(ConfigIssue(path, line, col, dotted(loc), message))
    issues.sort(key=lambda i: (i.line, i.column))
    return issues


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def position(tree: Any, loc: Loc) -> tuple[int, int]:
    """1-based position of the deepest node of `loc` present in the YAML tree."""
    node, line, col = tree, 0, 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break
    return line + 1, col + 1


def _did_you_mean(model: type[BaseModel], loc: Loc) -> str:
    """Suggest the closest field name of the model that owns the unknown key."""
    parent = _model_at(model, loc[:-1])
    if parent is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(parent.model_fields), n=1, cutoff=0.6)
    return (
        f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(parent.model_fields)}"
    )


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Follow `loc` through fields, dict values and list items to the model it lands in."""
    current: Any = model
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and len(args) == 2 or origin is list and args:
            current = args[-1]
        else:
            return None
    current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_optional(tp: Any) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
