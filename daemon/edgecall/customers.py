"""Customer lists: who a campaign calls, with what seed 003 knows about them (issue 18).

A list comes as CSV, from a file (`edgecall campaign import`) or in parts over MQTT
(the `list-import` command), with a header row naming its columns. Only `number` is
required; the others are the seed's features (S1, S221), each optional:

| column | meaning | value |
|---|---|---|
| number | the number to dial, as the PBX expects it | digits, optional +, * and # (1) |
| customer_id, name | head office's id and the customer's name | text |
| group | head office's customer group (prompt variants are judged per group) | [A-Za-z0-9_.-] |
| language | the call's language | zh or en |
| time_zone | where the customer is: calling hours are theirs | IANA name, e.g. Asia/Shanghai |
| total_spend | purchase history: money spent so far | number >= 0 |
| purchase_count | purchase history: purchases so far | integer >= 0 |
| last_purchase | purchase history: the latest purchase | YYYY-MM-DD |
| categories | purchase history: the categories usually bought | names separated by ; |
| clicks, campaigns_joined | interest signals | integer >= 0 |
| page_time_s | interest signals: time on the product pages | number >= 0 |
| call_duration_s | interaction history: mean length of past calls | number >= 0 |
| satisfaction | interaction history: mean satisfaction score | 0 to 5 |
| answer_slots | response pattern: time slots they answered in before | slot names separated by ; |
| open_rate, join_rate | response pattern: share of campaigns opened, joined | 0 to 1 |

(1) Spaces, dashes, dots and brackets are dropped: "+86 138-0000 (0001)" is dialled as
+8613800000001.

A row that breaks a rule is reported with its line and column and skipped; the rest
are kept. An unknown column, or no `number` column, rejects the whole file (a typo in
a header would otherwise silently drop a feature from every row). Customers are kept
in the history database, one per number (its normalised spelling): importing a number
again updates it, and `edgecall forget` erases it with the person's calls.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from edgecall.config.appliance import known_time_zone
from edgecall.dnc import normalise

NUMBER = re.compile(r"^\+?[0-9*#]{2,32}$")
SEPARATORS = re.compile(r"[\s().-]")
GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_TEXT = 128


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError("not a whole number" if kind is int else "not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a number")
    return value


def _count(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _amount(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _share(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def _score(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value <= 5:
        raise ValueError("must be between 0 and 5")
    return value


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD)") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    return text


def _group(text: str) -> str:
    if not GROUP.match(text):
        raise ValueError("letters, digits, '_', '.' and '-' only, up to 64")
    return text


def _language(text: str) -> str:
    if text not in ("zh", "en"):
        raise ValueError("must be zh or en")
    return text


# Identity columns, then the seed's features: column -> parser of its text.
IDENTITY: dict[str, Callable[[str], Any]] = {
    "customer_id": _text,
    "name": _text,
    "group": _group,
    "language": _language,
    "time_zone": known_time_zone,
}
FEATURES: dict[str, Callable[[str], Any]] = {
    "total_spend": _amount,
    "purchase_count": _count,
    "last_purchase": _day,
    "categories": _names,
    "clicks": _count,
    "page_time_s": _amount,
    "campaigns_joined": _count,
    "call_duration_s": _amount,
    "satisfaction": _score,
    "answer_slots": _names,
    "open_rate": _share,
    "join_rate": _share,
}
COLUMNS = ("number", *IDENTITY, *FEATURES)


class ListFileError(ValueError):
    """The file as a whole cannot be read as a customer list (the message says why)."""


@dataclass(frozen=True)
class Customer:
    line: int
    number: str  # as given, for dialling
    key: str  # normalised, for deduplication
    identity: dict[str, Any]
    features: dict[str, Any]


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "error": self.message}


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0  # new customers
    updated: int = 0  # numbers already known: their details replaced
    errors: list[RowError] = field(default_factory=list)
    duplicates: list[RowError] = field(default_factory=list)  # later rows of one number

    def to_json(self, limit: int = 100) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": len(self.errors),
            "errors": [e.to_json() for e in self.errors[:limit]],
            "duplicates": [d.to_json() for d in self.duplicates[:limit]],
        }


def parse(text: Iterable[str]) -> Iterator[Customer | RowError]:
    """Each data row of a customer list as a `Customer` or the first `RowError` in it;
    raises ListFileError when the header is unusable."""
    reader = csv.reader(text)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ListFileError("empty: the first line must name the columns") from None
    except csv.Error as exc:
        raise ListFileError(f"line 1: {exc}") from None
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ListFileError(f"line 1: unknown column {unknown[0]!r}; columns: {', '.join(COLUMNS)}")
    if "number" not in header:
        raise ListFileError("line 1: no 'number' column")
    if len(set(header)) != len(header):
        raise ListFileError("line 1: a column is named twice")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(reader.line_num, None, f"not CSV: {exc}")
            continue
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        yield _row(reader.line_num, header, row)


def _row(line: int, header: list[str], row: list[str]) -> Customer | RowError:
    if len(row) != len(header):
        return RowError(line, None, f"{len(row)} fields, the header names {len(header)}")
    cells = {h: cell.strip() for h, cell in zip(header, row, strict=True)}
    given = cells.pop("number")
    number = SEPARATORS.sub("", given)  # "+86 138-0000 (0001)" is dialled as +8613800000001
    if not NUMBER.match(number):
        return RowError(line, "number", f"{given!r} is not a number to dial")
    identity: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for column, text in cells.items():
        if not text:
            continue  # missing values are allowed
        parse_cell = IDENTITY.get(column) or FEATURES[column]
        try:
            value = parse_cell(text)
        except ValueError as exc:
            return RowError(line, column, f"{text!r}: {exc}")
        (identity if column in IDENTITY else features)[column] = value
    return Customer(line, number, normalise(number), identity, features)


def read_list(
    text: Iterable[str],
    store: Callable[[list[Customer]], tuple[int, int]],
    *,
    batch: int = 1000,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Parse a list and hand its customers to `store` in batches (it returns how many
    were new and how many updated); a number given twice keeps its last row."""
    report = ImportReport()
    pending: dict[str, Customer] = {}
    seen: dict[str, int] = {}

    def flush() -> None:
        new, updated = store(list(pending.values()))
        report.imported += new
        report.updated += updated
        pending.clear()
        if progress is not None:
            progress(report)

    for item in parse(text):
        report.rows += 1
        if isinstance(item, RowError):
            report.errors.append(item)
            continue
        if item.key in seen:
            report.duplicates.append(
                RowError(
                    item.line, "number", f"same number as line {seen[item.key]}: kept this row"
                )
            )
        seen[item.key] = item.line
        pending[item.key] = item
        if len(pending) >= batch:
            flush()
    if pending:
        flush()  # a number stored in an earlier batch and given again counts as updated
    return report


def lines(text: str) -> io.StringIO:
    """A CSV given as one string (an MQTT part), read line by line."""
    return io.StringIO(text, newline="")
