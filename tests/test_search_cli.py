"""`hwnas search`: argument checks, and a full run against a stand-in supernet and validator."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from service.cli import main
from service.search.synthetic import SyntheticValidator, synthetic_macs
from service.supernets.elastic_mbv3 import ArchSpec


class StandInSupernet:
    """Just what the command uses: a space; metrics come from the synthetic validator."""

    family = "stand-in"
    dataset = "none"

    def __init__(self) -> None:
        self.space = ArchSpec().search_space()
        self.validator = SyntheticValidator(self.space)
        self.macs = synthetic_macs(self.space)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandInSupernet:
    import service.evaluation.validation as validation
    import service.supernets.registry as registry

    supernet = StandInSupernet()

    def validate(net: Any, configs: Sequence[Mapping[str, Any]], devices: Any) -> list[dict]:
        assert [d.name for d in devices] == ["host"]
        return [{**supernet.validator.metrics(c), **supernet.macs(dict(c))} for c in configs]

    monkeypatch.setattr(registry, "load_supernet", lambda family, checkpoint=None: supernet)
    monkeypatch.setattr(validation, "validate_subnets", validate)
    monkeypatch.setattr(validation, "exact_metrics", lambda net, config: supernet.macs(config))
    return supernet


ARGS = [
    "search", "--supernet", "mbv3-digits",
    "--objective", "accuracy:max", "--objective", "latency@host:min",
    "--constraint", "macs<=1e8", "--budget", "16", "--tactic", "random", "--seed", "0",
]  # fmt: skip


def test_search_prints_the_front_as_json(stand_in: StandInSupernet, capsys: Any) -> None:
    assert main([*ARGS, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["validations_used"] == 16
    assert report["front"]["feasible"] is True
    assert all(p["metrics"]["macs"] <= 1e8 for p in report["front"]["points"])
    assert report["spec"]["constraints"] == ["macs<=1e+08"]


def test_search_prints_a_table_and_says_when_nothing_is_feasible(
    stand_in: StandInSupernet, capsys: Any
) -> None:
    assert main([*ARGS[:-6], "--constraint", "latency@host<=0.1", "--budget", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("No feasible point for macs<=1e+08, latency@host<=0.1; the 5 closest:")
    assert "latency@host" in out.splitlines()[1]
    for line in out.splitlines()[2:]:  # configs list active genes only
        for stage in range(4):
            if f"s{stage}.depth=2" in line:
                assert f"s{stage}.b2." not in line and f"s{stage}.b3." not in line


def test_search_takes_the_predictors_and_exact_features(
    stand_in: StandInSupernet, capsys: Any
) -> None:
    extra = ["--predictor", "ridge", "--predictor", "gp", "--no-exact-features", "--json"]
    assert main([*ARGS[:-4], "--tactic", "linas", "--seed", "0", *extra]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["spec"]["predictors"] == ["ridge", "gp"]
    assert report["spec"]["exact_features"] is False
    fitted = [r["predictor_scores"] for r in report["iterations"] if r["predictor_scores"]]
    assert fitted, "LINAS never fitted its predictors"
    assert {s["model"] for scores in fitted for s in scores.values()} <= {"ridge", "gp"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--objective", "latency@phone:min"], "latency on this host only"),
        (["--objective", "energy:min"], "unknown metric 'energy'"),
        (["--constraint", "macs<5"], "must look like"),
        (["--predictor", "xgboost"], "unknown candidate(s) ['xgboost']"),
    ],
)
def test_search_rejects_what_it_cannot_measure(extra: list[str], message: str, capsys: Any) -> None:
    assert main([*ARGS, *extra]) == 2
    assert message in capsys.readouterr().err
