"""Latency of a sub-network as the plain sum of its ops' LUT entries."""

from __future__ import annotations

from collections.abc import Sequence

from latency_tables.schema import LatencyTable, LatencyTableError

_LISTED_MISSING = 10


class MissingOpKeysError(LatencyTableError):
    """The table has no entry for some ops the sub-network runs."""

    code = "latency_table_incomplete"

    def __init__(self, table: LatencyTable, missing_keys: list[str]) -> None:
        self.missing_keys = missing_keys
        listed = "\n  ".join(missing_keys[:_LISTED_MISSING])
        more = len(missing_keys) - _LISTED_MISSING
        super().__init__(
            f"latency table for device {table.device!r} (family {table.family!r}) has no entry "
            f"for {len(missing_keys)} op key(s) of this sub-network:\n  {listed}"
            + (f"\n  … and {more} more" if more > 0 else "")
            + "\nadd them (e.g. `hwnas lut build`) or use a table measured for this space"
        )


def estimate_latency(
    lut: LatencyTable, layer_keys: Sequence[str], statistic: str = "median"
) -> float:
    """Sum of the ops' entries in ms; `statistic` is mean, median or p90 (mean where absent)."""
    missing = lut.missing_keys(list(layer_keys))
    if missing:
        raise MissingOpKeysError(lut, missing)
    return sum(lut.entries[key].latency_ms(statistic) for key in layer_keys)
