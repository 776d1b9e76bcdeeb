"""Reading selected header values out of a raw SIP message (pure)."""

from __future__ import annotations

from collections.abc import Iterable


def header_values(message: str, names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, value) for each header line whose name is in `names` (case-insensitive).

    Only the header section is read; folded continuation lines are joined.
    Names are returned as spelled in `names`.
    """
    wanted = {n.lower(): n for n in names}
    if not wanted:
        return []
    head = message.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    lines: list[str] = []
    for raw in head.splitlines()[1:]:
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw)
    found: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in wanted:
            found.append((wanted[name.strip().lower()], value.strip()))
    return found


def all_headers(message: str) -> dict[str, str]:
    """Every header of the message; a repeated header keeps its values comma-joined."""
    head = message.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    out: dict[str, str] = {}
    for raw in head.splitlines()[1:]:
        name, sep, value = raw.partition(":")
        if not sep or raw[:1] in (" ", "\t"):
            continue
        key = name.strip()
        out[key] = f"{out[key]}, {value.strip()}" if key in out else value.strip()
    return out
