"""LUT schema, importers (hwnas JSON, CSV, Once-for-All yaml) and the plain-sum estimator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from latency_tables import (
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MissingOpKeysError,
    estimate_latency,
    read_ofa_yaml,
    read_table_csv,
    read_table_json,
    table_to_csv,
)
from latency_tables.importers import load_table_file
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3

DESCRIPTOR = {"runtime": "tflite", "runtime_version": "2.1", "threads": 1, "batch_size": 1}
FOREIGN_KEY = (
    "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0"
)


@pytest.fixture(scope="module")
def supernet() -> MobileNetV3DigitsSupernet:
    return MobileNetV3DigitsSupernet(ElasticMobileNetV3())


def table_for(keys: list[str]) -> LatencyTable:
    entries = {
        key: LatencyEntry(mean_ms=0.1 + i / 7, std_ms=0.01 * i, count=50, median_ms=0.1 + i / 8)
        for i, key in enumerate(keys)
    }
    return LatencyTable(
        device="note10",
        descriptor=DESCRIPTOR,
        family="mbv3-digits",
        measurement={"method": "test"},
        entries=entries,
    )


def test_json_round_trip_keeps_everything(supernet: MobileNetV3DigitsSupernet) -> None:
    table = table_for(supernet.all_layer_keys())
    assert read_table_json(table.to_json()) == table


def test_csv_round_trip_keeps_entries(supernet: MobileNetV3DigitsSupernet) -> None:
    table = table_for(supernet.all_layer_keys()[:5])
    again = read_table_csv(
        table_to_csv(table), device="note10", descriptor=DESCRIPTOR, family="mbv3-digits"
    )
    assert again.entries == table.entries


def test_ofa_yaml_entries_are_used_for_our_keys(supernet: MobileNetV3DigitsSupernet) -> None:
    config = supernet.space.sample(np.random.default_rng(3), 1)[0]
    keys = supernet.layer_keys(config)
    ofa = {key: {"count": 20, "mean": 0.5 + i, "std": 0.1} for i, key in enumerate(keys)}
    ofa[FOREIGN_KEY] = {"count": 20, "mean": 9.0, "std": 1.0}
    imported = read_ofa_yaml(
        yaml.safe_dump(ofa),
        device="note10",
        descriptor=DESCRIPTOR,
        family="mbv3-digits",
        known_keys=set(supernet.all_layer_keys()),
    )
    assert imported.unmapped_keys == [FOREIGN_KEY]
    expected = sum(ofa[key]["mean"] for key in keys)
    assert estimate_latency(imported.table, keys, statistic="mean") == pytest.approx(expected)


def proxylessnas_style(key: str) -> str:
    """Our key as the ProxylessNAS table writes it: expand as a ratio, no se/hs fields."""
    fields = dict(part.split(":", 1) for part in key.split("-")[1:])
    ratio = int(fields["expand"]) // int(fields["input"].split("x")[-1])
    order = ("input", "output", "expand", "kernel", "stride", "idskip")
    fields["expand"] = str(ratio)
    return "-".join(["expanded_conv", *(f"{name}:{fields[name]}" for name in order)])


def test_proxylessnas_yaml_with_var_and_expand_ratio_maps_to_our_keys(
    supernet: MobileNetV3DigitsSupernet,
) -> None:
    ours = next(k for k in supernet.all_layer_keys() if "hs:0" in k and "expand:" in k)
    stem = supernet.all_layer_keys()[0]
    theirs = proxylessnas_style(ours)
    assert theirs != ours
    text = (
        f"{theirs}:\n  count: 30\n  mean: 1.5\n  var: 0.25\n"
        f"{stem}: {{count: 30, mean: 0.4, var: 0.01}}\n"
    )
    imported = read_ofa_yaml(
        text,
        device="pixel1",
        descriptor=DESCRIPTOR,
        family="mbv3-digits",
        known_keys=set(supernet.all_layer_keys()),
    )
    assert imported.unmapped_keys == []
    assert imported.renamed_keys == {theirs: ours}
    entry = imported.table.entries[ours]
    assert (entry.mean_ms, entry.std_ms, entry.count) == (1.5, 0.5, 30)
    assert math.isclose(imported.table.entries[stem].std_ms, 0.1)


def test_missing_keys_are_listed(supernet: MobileNetV3DigitsSupernet) -> None:
    keys = supernet.layer_keys(supernet.space.largest())
    table = table_for(keys[2:])
    with pytest.raises(MissingOpKeysError) as caught:
        estimate_latency(table, keys)
    assert caught.value.missing_keys == list(dict.fromkeys(keys[:2]))
    assert keys[0] in str(caught.value) and keys[1] in str(caught.value)


def test_estimate_sums_the_chosen_statistic(supernet: MobileNetV3DigitsSupernet) -> None:
    keys = supernet.layer_keys(supernet.space.smallest())
    table = table_for(list(dict.fromkeys(keys)))
    assert estimate_latency(table, keys, "mean") == pytest.approx(
        sum(table.entries[k].mean_ms for k in keys)
    )
    assert estimate_latency(table, keys) == pytest.approx(
        sum(table.entries[k].median_ms or 0 for k in keys)
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("key,mean_ms,std_ms\na,0.1,0.01\nb,fast,0.01\n", "line 3: mean_ms"),
        ("key,mean_ms\na,0.1\na,0.2\n", "line 3: duplicate key 'a'"),
        ("key,latency\na,0.1\n", "line 1: header must have columns key and mean_ms"),
        ("key,mean_ms,count\na,0.1,2.5\n", "line 2: count: expected a whole number"),
        ("key,mean_ms\na,-1\n", "line 2: mean_ms: expected a finite non-negative number"),
    ],
)
def test_bad_csv_is_rejected_with_line_detail(text: str, detail: str) -> None:
    with pytest.raises(LatencyTableError, match=detail):
        read_table_csv(text, device="d", descriptor=DESCRIPTOR, family="f", source="t.csv")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Conv-input:32x32x1-output:16x16x16: {count: 3, std: 0.1}\n", "missing 'mean'"),
        ("Conv-input:32x32x1-output:16x16x16: {count: 3, mean: 0.1}\n", "missing 'std'"),
        ("Conv-input:32x32x1-output:16x16x16: {count: 3, mean: x, std: 1}\n", "mean: expected"),
        ("Conv-input:32x32x1-output:16x16x16: [1, 2]\n", "expected a mapping"),
        ("a: {mean: 1\nb: 2\n", "line 2"),
        ("- 1\n- 2\n", "expected a non-empty mapping"),
        ("expanded_conv-input:1x1x1-output:1x1x1: {mean: 1, std: 0}\n", "lacks"),
        (f"{FOREIGN_KEY}: {{count: 1, mean: 1, std: 0}}\n", "none of its 1 keys"),
    ],
)
def test_bad_ofa_yaml_is_rejected_with_key_detail(
    supernet: MobileNetV3DigitsSupernet, text: str, detail: str
) -> None:
    with pytest.raises(LatencyTableError, match=detail):
        read_ofa_yaml(
            text,
            device="d",
            descriptor=DESCRIPTOR,
            family="mbv3-digits",
            known_keys=set(supernet.all_layer_keys()),
        )


def test_bad_json_names_the_entry_and_field(supernet: MobileNetV3DigitsSupernet) -> None:
    table = table_for(supernet.all_layer_keys()[:2])
    key = supernet.all_layer_keys()[1]
    broken = table.to_json().replace('"mean_ms": 0.24285714285714285', '"mean_ms": -3')
    assert broken != table.to_json()
    with pytest.raises(LatencyTableError, match=rf"entries\.{key}\.mean_ms"):
        read_table_json(broken)
    with pytest.raises(LatencyTableError, match="line 1 column 2"):
        read_table_json("{oops}")


def test_load_table_file_picks_the_reader_by_suffix(
    tmp_path: Path, supernet: MobileNetV3DigitsSupernet
) -> None:
    table = table_for(supernet.all_layer_keys()[:3])
    (tmp_path / "t.json").write_text(table.to_json())
    (tmp_path / "t.csv").write_text(table_to_csv(table))
    (tmp_path / "t.txt").write_text("x")
    meta = {"device": "note10", "descriptor": DESCRIPTOR, "family": "mbv3-digits"}
    assert load_table_file(tmp_path / "t.json").table == table
    assert load_table_file(tmp_path / "t.csv", **meta).table.entries == table.entries
    with pytest.raises(LatencyTableError, match=r"unknown table format '\.txt'"):
        load_table_file(tmp_path / "t.txt", **meta)
    with pytest.raises(LatencyTableError, match="need device"):
        load_table_file(tmp_path / "t.csv")
