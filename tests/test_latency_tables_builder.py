"""The LUT builder profiles real ops with onnxruntime (a few keys, short runs, to stay fast)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
from torch import nn

from latency_tables import LatencyTableError, estimate_latency, read_table_json
from latency_tables.builder import build_lut, build_luts
from service.cli import lut as lut_commands
from service.evaluation.profile import DeviceProfile
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3

QUICK = DeviceProfile(
    name="ci",
    threads=1,
    batch_size=4,
    warmup_runs=2,
    warmup_seconds=0.0,
    timed_runs=5,
    passes=2,
    speed_probe=False,
)


@pytest.fixture(scope="module")
def supernet() -> MobileNetV3DigitsSupernet:
    return MobileNetV3DigitsSupernet(ElasticMobileNetV3())


def test_builder_measures_exactly_the_given_keys(supernet: MobileNetV3DigitsSupernet) -> None:
    keys = [supernet.all_layer_keys()[i] for i in (0, 1, -1)]
    table = build_lut(supernet, QUICK, keys=keys)
    assert list(table.entries) == keys
    assert all(e.mean_ms > 0 and e.median_ms and e.count >= 5 for e in table.entries.values())
    assert (table.descriptor.threads, table.descriptor.batch_size) == (1, 4)
    assert table.descriptor.runtime == "onnxruntime" and table.descriptor.runtime_version
    assert table.family == "mbv3-digits" and table.measurement.measured_at is not None
    assert read_table_json(table.to_json()) == table
    assert estimate_latency(table, keys) > 0


def test_builder_times_both_clocks_in_one_sweep(supernet: MobileNetV3DigitsSupernet) -> None:
    keys = supernet.all_layer_keys()[-2:]
    passes: list[str] = []
    two_passes = replace(QUICK, passes=2, max_cv=float("inf"))
    tables = build_luts(
        supernet,
        two_passes,
        keys=keys,
        clocks=("wall", "thread_cpu"),
        progress=lambda done, total, key: passes.append(key),
    )
    assert sorted(passes) == sorted(keys * 2)
    assert tables["wall"].device == "ci" and tables["thread_cpu"].device == "ci-thread-cpu"
    assert tables["thread_cpu"].descriptor.model_dump()["clock"] == "thread_cpu"
    assert tables["wall"].descriptor.model_dump()["passes"] == 2
    for table in tables.values():
        assert list(table.entries) == keys
        assert all(e.count == QUICK.timed_runs for e in table.entries.values())


def test_default_keys_are_all_the_space_runs(supernet: MobileNetV3DigitsSupernet) -> None:
    seen: list[str] = []
    build_lut(
        _OpsOnly(supernet, limit=2), QUICK, progress=lambda done, total, key: seen.append(key)
    )
    assert sorted(set(seen)) == sorted(supernet.all_layer_keys()[:2])


def test_builder_rejects_supernets_without_op_modules() -> None:
    with pytest.raises(LatencyTableError, match="no op_module"):
        build_lut(object(), QUICK, keys=["Conv-input:1x1x1-output:1x1x1"])


def test_lut_show_command_reports_unmapped_and_missing_keys(
    tmp_path: Path, supernet: MobileNetV3DigitsSupernet, capsys: pytest.CaptureFixture[str]
) -> None:
    key = supernet.all_layer_keys()[0]
    path = tmp_path / "note10.yaml"
    path.write_text(
        f"{key}: {{count: 3, mean: 1.0, std: 0.1}}\nLogits-input:1x1x9-output:3: "
        "{count: 3, mean: 1.0, std: 0.1}\n"
    )
    parser = argparse.ArgumentParser()
    lut_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lut", "show", str(path), "--supernet", "mbv3-digits"])
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 1
    assert summary["unmapped_keys"] == ["Logits-input:1x1x9-output:3"]
    assert len(summary["missing_keys"]) == len(supernet.all_layer_keys()) - 1


class _OpsOnly:
    """A supernet stand-in whose space runs only the first `limit` ops of the real one."""

    family = "mbv3-digits"

    def __init__(self, supernet: MobileNetV3DigitsSupernet, limit: int) -> None:
        self.supernet, self.limit = supernet, limit

    def all_layer_keys(self) -> list[str]:
        return self.supernet.all_layer_keys()[: self.limit]

    def op_module(self, key: str) -> tuple[nn.Module, tuple[int, ...]]:
        return self.supernet.op_module(key)


def test_lut_build_command_writes_a_loadable_table(
    tmp_path: Path, supernet: MobileNetV3DigitsSupernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latency_tables.builder

    real_build = latency_tables.builder.build_lut
    seen: dict[str, object] = {}

    def two_keys(model: object, profile: DeviceProfile, **options: object) -> object:
        seen.update(profile=profile, **options)
        quick = DeviceProfile(
            name=profile.name,
            threads=profile.threads,
            batch_size=profile.batch_size,
            warmup_runs=1,
            warmup_seconds=0.0,
            timed_runs=3,
        )
        return real_build(model, quick, keys=supernet.all_layer_keys()[-2:])

    monkeypatch.setattr(latency_tables.builder, "build_lut", two_keys)
    parser = argparse.ArgumentParser()
    lut_commands.register(parser.add_subparsers(dest="command", required=True))
    output = tmp_path / "host.lut.json"
    args = parser.parse_args(
        [
            "lut",
            "build",
            "--supernet",
            "mbv3-digits",
            "--random-weights",
            "--device",
            "box",
            "--batch-size",
            "2",
            "--output",
            str(output),
        ]
    )
    assert args.handler(args) == 0
    table = read_table_json(output.read_text())
    assert table.device == "box" and table.descriptor.batch_size == 2
    assert len(table.entries) == 2 and seen["clock"] == "wall"
