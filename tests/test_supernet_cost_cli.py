"""`hwnas supernet cost` and `hwnas lut estimate`, and OFA's Note10 table on the OFA families."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from latency_tables import read_ofa_yaml
from service.cli import main
from service.supernets.ofa_mbv3 import OFAMobileNetV3Supernet

NOTE10 = Path(__file__).parent / "data" / "ofa_note10_224_lookup_table.yaml"
LARGEST = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [224]}
SMALLEST = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [224]}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_lines(path: Path, configs: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(c) for c in configs) + "\n\n")
    return path


def _rows(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _configs_at_224(supernet: OFAMobileNetV3Supernet, n: int) -> list[dict]:
    return [dict(c, resolution=224) for c in supernet.space.sample(np.random.default_rng(4), n)]


def test_cost_reads_both_forms_and_prints_exact_costs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.0")
    genes = supernet.space.sample(np.random.default_rng(1), 1)[0]
    path = _write_lines(tmp_path / "configs.jsonl", [LARGEST, genes, SMALLEST])
    assert main(["supernet", "cost", "ofa-mbv3-w1.0", "--configs", str(path)]) == 0
    rows = _rows(capsys)
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[0]["macs"] == 566_170_656 and rows[0]["params"] == 7_664_760
    assert rows[1]["macs"] == supernet.macs(genes) and rows[1]["config"] == genes
    assert rows[2]["ofa"] == SMALLEST
    assert rows[2]["macs"] == supernet.macs(SMALLEST) < rows[0]["macs"]


def test_cost_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(LARGEST) + "\n" + json.dumps({**SMALLEST, "d": [5] * 5}) + "\n")
    assert main(["supernet", "cost", "ofa-mbv3-w1.0", "--configs", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "line 2" in captured.err and "s0.depth" in captured.err
    path.write_text("{not json\n")
    assert main(["supernet", "cost", "ofa-mbv3-w1.0", "--configs", str(path)]) == 2
    assert "line 1: invalid JSON" in capsys.readouterr().err


def test_note10_table_maps_every_key_of_w12_at_224() -> None:
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.2")
    imported = read_ofa_yaml(
        NOTE10.read_bytes(),
        device="note10",
        descriptor={"runtime": "tflite"},
        family="ofa-mbv3-w1.2",
        known_keys=supernet.all_layer_keys(),
    )
    assert imported.unmapped_keys == []
    assert set(imported.table.entries) == set(supernet.layer_keys_at(224))
    configs = [supernet.space.smallest(), supernet.space.largest(), SMALLEST, LARGEST]
    for config in [*configs, *_configs_at_224(supernet, 300)]:
        if supernet.resolution(config) == 224:
            assert imported.table.missing_keys(supernet.layer_keys(config)) == []


def test_note10_table_is_not_a_w10_table() -> None:
    """OFA's Note10 table was measured on w1.2's shapes: importing it for w1.0 is refused."""
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.0")
    with pytest.raises(ValueError, match="none of its 96 keys names an op"):
        read_ofa_yaml(
            NOTE10.read_bytes(),
            device="note10",
            descriptor={"runtime": "tflite"},
            family="ofa-mbv3-w1.0",
            known_keys=supernet.all_layer_keys(),
        )


def test_lut_estimate_sums_the_table_per_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.2")
    randoms = _configs_at_224(supernet, 20)
    path = _write_lines(tmp_path / "configs.jsonl", [SMALLEST, LARGEST, *randoms])
    argv = ["lut", "estimate", "--family", "ofa-mbv3-w1.2", "--table", str(NOTE10)]
    assert main([*argv, "--configs", str(path)]) == 0
    rows = _rows(capsys)
    assert len(rows) == 22 and all(r["missing_keys"] == [] for r in rows)
    table = yaml_means()
    expected = sum(table[k] for k in supernet.layer_keys(LARGEST))
    assert rows[1]["latency_ms"] == pytest.approx(expected)
    assert rows[0]["latency_ms"] < min(r["latency_ms"] for r in rows[2:]) <= rows[1]["latency_ms"]


def yaml_means() -> dict[str, float]:
    import yaml

    return {k: v["mean"] for k, v in yaml.safe_load(NOTE10.read_text()).items()}


def test_lut_estimate_reports_missing_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_lines(tmp_path / "configs.jsonl", [SMALLEST, {**SMALLEST, "r": [160]}])
    argv = ["lut", "estimate", "--family", "ofa-mbv3-w1.2", "--table", str(NOTE10)]
    assert main([*argv, "--configs", str(path)]) == 1
    rows = _rows(capsys)
    assert rows[0]["missing_keys"] == [] and rows[0]["latency_ms"] > 0
    # a 224 table does not cover a 160 network: matched by resolution, so every key is missing
    assert rows[1]["latency_ms"] is None
    assert "Conv-input:160x160x3-output:80x80x24" in rows[1]["missing_keys"]
    argv = ["lut", "estimate", "--family", "ofa-mbv3-w1.0", "--table", str(NOTE10)]
    assert main([*argv, "--configs", str(path)]) == 1
    captured = capsys.readouterr()
    assert "none of the table's 96 keys is an op of ofa-mbv3-w1.0" in captured.err


def test_cost_works_for_the_gene_form_of_any_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.supernets.registry import load_supernet

    supernet = load_supernet("mbv3-digits")
    path = _write_lines(tmp_path / "configs.jsonl", [supernet.space.smallest()])
    assert main(["supernet", "cost", "mbv3-digits", "--configs", str(path)]) == 0
    (row,) = _rows(capsys)
    assert row["macs"] == supernet.macs(supernet.space.smallest()) and "ofa" not in row
