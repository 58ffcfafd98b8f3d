"""Read latency tables: hwnas JSON (the schema's own dump), CSV, and Once-for-All yaml tables.

Every reader raises `LatencyTableError` naming the line, key or field to fix. Foreign keys are
rewritten into our op-key format and, given the keys a space runs, split into mapped and unmapped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from latency_tables.schema import (
    MAX_COUNT,
    DeviceDescriptor,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MeasurementInfo,
    describe_validation_error,
)

CSV_COLUMNS = ("key", "mean_ms", "std_ms", "count", "median_ms", "p90_ms", "cv")
ExpandMeaning = Literal["auto", "channels", "ratio"]
_EXPANDED_CONV_FIELDS = ("input", "output", "expand", "kernel", "stride", "idskip", "se", "hs")


@dataclass(frozen=True)
class ImportedTable:
    """An imported table plus what did not carry over: source keys no op of the space runs."""

    table: LatencyTable
    unmapped_keys: list[str] = field(default_factory=list)
    renamed_keys: dict[str, str] = field(default_factory=dict)  # source key → our key


def _text(data: str | bytes, source: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LatencyTableError(f"{source}: not UTF-8 text ({error})") from error


def read_table_json(data: str | bytes, source: str = "<json>") -> LatencyTable:
    """A table in hwnas's own JSON format (what `LatencyTable.to_json` writes)."""
    try:
        parsed = json.loads(_text(data, source))
    except json.JSONDecodeError as error:
        raise LatencyTableError(
            f"{source}: line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"
        ) from error
    except RecursionError as error:
        raise LatencyTableError(f"{source}: invalid JSON: nested too deeply") from error
    try:
        return LatencyTable.model_validate(parsed)
    except ValidationError as error:
        raise LatencyTableError(describe_validation_error(error, source)) from error


def _table(
    entries: dict[str, LatencyEntry],
    device: str,
    descriptor: DeviceDescriptor | Mapping[str, Any],
    family: str,
    measurement: MeasurementInfo | Mapping[str, Any],
    source: str,
) -> LatencyTable:
    try:
        return LatencyTable.model_validate(
            {
                "device": device,
                "descriptor": descriptor,
                "family": family,
                "measurement": measurement,
                "entries": entries,
            }
        )
    except ValidationError as error:
        raise LatencyTableError(describe_validation_error(error, source)) from error


def _number(value: Any, where: str, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LatencyTableError(f"{where}: expected a number, got {str(value)[:40]!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise LatencyTableError(f"{where}: expected a number, got {str(value)[:40]!r}") from error
    if not math.isfinite(number) or number < 0:
        raise LatencyTableError(
            f"{where}: expected a finite non-negative number, got {str(value)[:40]!r}"
        )
    if integer:
        if number != int(number) or number > MAX_COUNT:
            raise LatencyTableError(
                f"{where}: expected a whole number 1..{MAX_COUNT}, got {str(value)[:40]!r}"
            )
        return int(number)
    return number


def read_table_csv(
    data: str | bytes,
    *,
    device: str,
    descriptor: DeviceDescriptor | Mapping[str, Any],
    family: str,
    measurement: MeasurementInfo | Mapping[str, Any] | None = None,
    source: str = "<csv>",
) -> LatencyTable:
    """CSV with a header: `key,mean_ms` required; `std_ms,count,median_ms,p90_ms,cv` optional."""
    reader = csv.DictReader(io.StringIO(_text(data, source)))
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise LatencyTableError(f"{source}: line 1: {error}") from error
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown or "key" not in header or "mean_ms" not in header:
        raise LatencyTableError(
            f"{source}: line 1: header must have columns key and mean_ms (optional: "
            f"{', '.join(CSV_COLUMNS[2:])}); got {header}"
            + (f", unknown {unknown}" if unknown else "")
        )
    entries: dict[str, LatencyEntry] = {}
    for row in _csv_rows(reader, source):
        line = reader.line_num
        if None in row or any(value is None for value in row.values()):
            raise LatencyTableError(f"{source}: line {line}: expected {len(header)} fields")
        key = row.pop("key").strip()
        if not key:
            raise LatencyTableError(f"{source}: line {line}: empty key")
        if key in entries:
            raise LatencyTableError(f"{source}: line {line}: duplicate key {key!r}")
        values: dict[str, float | int] = {}
        for column, text in row.items():
            if text.strip():
                values[column] = _number(
                    text.strip(), f"{source}: line {line}: {column}", integer=column == "count"
                )
        try:
            entries[key] = LatencyEntry.model_validate(values)
        except ValidationError as error:
            raise LatencyTableError(
                describe_validation_error(error, f"{source}: line {line}")
            ) from error
    if not entries:
        raise LatencyTableError(f"{source}: no rows after the header")
    info = measurement or {"method": "imported from CSV", "source": source}
    return _table(entries, device, descriptor, family, info, source)


def _csv_rows(reader: csv.DictReader[str], source: str) -> Iterator[dict[str, Any]]:
    """The reader's rows; a malformed line (e.g. a field past the CSV size limit) is a 422."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise LatencyTableError(f"{source}: line {reader.line_num}: {error}") from error
        yield row


def normalise_ofa_key(key: str, expand_is_ratio: bool) -> str:
    """An OFA/ProxylessNAS key in our format: fields in our order, `se`/`hs` defaulting to 0, and
    `expand` as the middle channel count (ProxylessNAS stores the ratio)."""
    kind, *parts = key.split("-")
    try:
        values = dict(part.split(":", 1) for part in parts)
    except ValueError as error:
        raise LatencyTableError(f"key {key!r}: fields must look like name:value") from error
    if "input" not in values or "output" not in values:
        raise LatencyTableError(f"key {key!r}: needs input: and output: fields")
    if kind != "expanded_conv":
        return f"{kind}-input:{values['input']}-output:{values['output']}"
    values.setdefault("se", "0")
    values.setdefault("hs", "0")
    missing = [name for name in _EXPANDED_CONV_FIELDS if name not in values]
    if missing:
        raise LatencyTableError(f"key {key!r}: expanded_conv key lacks {missing}")
    if expand_is_ratio:
        try:
            in_channels = int(values["input"].split("x")[-1])
            ratio = float(values["expand"])
            values["expand"] = str(round(ratio * in_channels))
        except (ValueError, OverflowError) as error:
            raise LatencyTableError(
                f"key {key[:200]!r}: a ProxylessNAS key needs a whole input channel count "
                f"(input:HxWxC) and a numeric expand ratio"
            ) from error
    return "-".join([kind, *(f"{name}:{values[name]}" for name in _EXPANDED_CONV_FIELDS)])


def _ofa_entry(key: str, stats: Any, source: str) -> tuple[LatencyEntry, bool]:
    where = f"{source}: key {key[:200]!r}"
    if not isinstance(stats, Mapping):
        raise LatencyTableError(f"{where}: expected a mapping with count, mean and std (or var)")
    if "mean" not in stats:
        have = sorted(str(name)[:40] for name in stats)[:20]
        raise LatencyTableError(f"{where}: missing 'mean' (have {have})")
    if "std" in stats:
        std_ms, has_var = _number(stats["std"], f"{where}: std"), False
    elif "var" in stats:
        std_ms, has_var = math.sqrt(_number(stats["var"], f"{where}: var")), True
    else:
        raise LatencyTableError(f"{where}: missing 'std' (or ProxylessNAS 'var')")
    count = int(_number(stats.get("count", 1), f"{where}: count", integer=True))
    if count < 1:
        raise LatencyTableError(f"{where}: count must be at least 1")
    mean_ms = _number(stats["mean"], f"{where}: mean")
    return LatencyEntry(mean_ms=mean_ms, std_ms=std_ms, count=count), has_var


def read_ofa_yaml(
    data: str | bytes,
    *,
    device: str,
    descriptor: DeviceDescriptor | Mapping[str, Any],
    family: str,
    known_keys: Collection[str] | None = None,
    expand: ExpandMeaning = "auto",
    measurement: MeasurementInfo | Mapping[str, Any] | None = None,
    source: str = "<yaml>",
) -> ImportedTable:
    """An OFA per-device yaml table (key → {count, mean, std}; ProxylessNAS: `var`, expand ratio).

    With `known_keys` (the keys the target space runs) only those entries are kept and the rest
    reported as unmapped; `expand="auto"` reads `expand` as a ratio when the table stores `var`.
    """
    try:
        parsed = yaml.safe_load(_text(data, source))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise LatencyTableError(f"{source}: {where}invalid YAML: {error}") from error
    except RecursionError as error:
        raise LatencyTableError(f"{source}: invalid YAML: nested too deeply") from error
    if not isinstance(parsed, dict) or not parsed:
        raise LatencyTableError(f"{source}: expected a non-empty mapping of op key → statistics")
    raw: dict[str, LatencyEntry] = {}
    uses_var = False
    for key, stats in parsed.items():
        if not isinstance(key, str):
            raise LatencyTableError(f"{source}: key {str(key)[:200]!r} is not a string")
        raw[key], has_var = _ofa_entry(key, stats, source)
        uses_var = uses_var or has_var
    expand_is_ratio = expand == "ratio" or (expand == "auto" and uses_var)
    entries: dict[str, LatencyEntry] = {}
    renamed: dict[str, str] = {}
    unmapped: list[str] = []
    for key, entry in raw.items():
        try:
            ours = normalise_ofa_key(key, expand_is_ratio)
        except LatencyTableError as error:
            raise LatencyTableError(f"{source}: {error}") from error
        if known_keys is not None and ours not in known_keys:
            unmapped.append(key)
            continue
        if ours != key:
            renamed[key] = ours
        entries[ours] = entry
    if not entries:
        raise LatencyTableError(
            f"{source}: none of its {len(raw)} keys names an op of family {family!r} "
            f"(first: {next(iter(raw))!r}); is it a table for another space or resolution?"
        )
    info = measurement or {"method": "imported from a Once-for-All yaml table", "source": source}
    return ImportedTable(
        _table(entries, device, descriptor, family, info, source), unmapped, renamed
    )


def restrict_to_keys(table: LatencyTable, known_keys: Collection[str]) -> ImportedTable:
    """Keep the entries whose key the target space runs; report the others as unmapped."""
    unmapped = [key for key in table.entries if key not in known_keys]
    kept = {key: entry for key, entry in table.entries.items() if key in known_keys}
    if not kept:
        raise LatencyTableError(
            f"none of the table's {len(table.entries)} keys names an op of the target space"
        )
    return ImportedTable(table.model_copy(update={"entries": kept}), unmapped)


def load_table_file(
    path: str | Path,
    *,
    device: str | None = None,
    descriptor: DeviceDescriptor | Mapping[str, Any] | None = None,
    family: str | None = None,
    known_keys: Collection[str] | None = None,
) -> ImportedTable:
    """Read a `.json`, `.csv` or `.yaml`/`.yml` table; CSV and yaml need device and family."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv", ".yaml", ".yml"):
        raise LatencyTableError(
            f"{path}: unknown table format {suffix!r}; use .json, .csv or .yaml"
        )
    data = path.read_bytes()
    if suffix == ".json":
        table = read_table_json(data, str(path))
        return (
            restrict_to_keys(table, known_keys) if known_keys is not None else ImportedTable(table)
        )
    if device is None or descriptor is None or family is None:
        raise LatencyTableError(f"{path}: CSV and yaml tables need device, descriptor and family")
    if suffix == ".csv":
        table = read_table_csv(
            data, device=device, descriptor=descriptor, family=family, source=str(path)
        )
        return (
            restrict_to_keys(table, known_keys) if known_keys is not None else ImportedTable(table)
        )
    return read_ofa_yaml(
        data,
        device=device,
        descriptor=descriptor,
        family=family,
        known_keys=known_keys,
        source=str(path),
    )


def table_to_csv(table: LatencyTable) -> str:
    """The entries as CSV in the columns `read_table_csv` reads (metadata is not included)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for key, entry in table.entries.items():
        values = entry.model_dump()
        writer.writerow({"key": key, **{k: "" if v is None else v for k, v in values.items()}})
    return buffer.getvalue()
