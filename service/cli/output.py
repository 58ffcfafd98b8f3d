"""Output of the commands that talk to a server: `-f json` (the API's objects), `table`, `csv`."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "csv")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1e4 else f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit(
    fmt: str,
    raw: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    stream: TextIO | None = None,
) -> None:
    """`raw` (JSON-ready) as JSON, or `rows` restricted to `columns` as a table or CSV."""
    out = stream or sys.stdout
    if fmt == "json":
        json.dump(raw, out, indent=2, default=str)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row.get(c)) for c in columns])
    else:
        out.write(table(rows, columns))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    texts = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(t[i]) for t in texts]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for t in texts:
        lines.append("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    if not rows:
        lines.append("(none)")
    return "\n".join(lines) + "\n"
