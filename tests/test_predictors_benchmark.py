"""The predictor-quality benchmark reads its measurement file and reports every contender."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from service.supernets.elastic_mbv3 import ArchSpec

SPACE = ArchSpec().search_space()
# benchmarks/ is a folder of scripts, not an installed package: load the script by path.
_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "predictor_quality.py"
_SPEC = importlib.util.spec_from_file_location("predictor_quality", _SCRIPT)
assert _SPEC is not None and _SPEC.loader is not None
benchmark = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(benchmark)
load_measurements, main, run = benchmark.load_measurements, benchmark.main, benchmark.run


def _write_synthetic(path, n=40):
    """A tiny file of the benchmark's shape, from a made-up function (not measured data)."""
    rng = np.random.default_rng(0)
    records = []
    for config in SPACE.sample(rng, n):
        size = sum(float(v) for v in config.values())
        metrics = {
            "accuracy": 80 + size / 10,
            "latency@host": size / 100,
            "macs": size * 1e6,
            "params": size * 1e3,
        }
        records.append({"config": config, "metrics": metrics})
    path.write_text(json.dumps(records))
    return path


def test_missing_file_says_what_it_needs(tmp_path):
    with pytest.raises(SystemExit, match=r"no measurement file.*--data"):
        load_measurements(tmp_path / "absent.json")


def test_record_without_target_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"config": SPACE.smallest(), "metrics": {"accuracy": 1.0}}]))
    with pytest.raises(SystemExit, match=r"record 0 lacks.*latency@host"):
        load_measurements(path)


def test_too_few_networks_for_the_sizes(tmp_path):
    path = _write_synthetic(tmp_path / "small.json", n=30)
    with pytest.raises(SystemExit, match="need at least"):
        run(path, repeats=1, sizes=[20])


@pytest.mark.slow  # DyNAS-T's grid search: 1000 fits per target
def test_report_has_every_target_size_and_contender(tmp_path, capsys):
    path = _write_synthetic(tmp_path / "synthetic.json")
    assert main(["--data", str(path), "--repeats", "1", "--sizes", "10"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert set(report["results"]) == {"accuracy@10", "latency@host@10"}
    for row in report["results"].values():
        assert set(row) == {"ours", "ours+cost", "engine", "ridge-onehot", "dynast"}
        for scores in row.values():
            assert -1.0 <= scores["kendall_tau"] <= 1.0
            assert scores["fit_seconds"] > 0
    assert report["n_held_out"] == 30
    assert report["environment"]["scikit-learn"] not in ("", "missing")
