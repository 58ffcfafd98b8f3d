"""The ask/tell engine in every tactic on a synthetic validation function (seconds per test)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from service.search import (
    Evaluation,
    HypervolumeScale,
    SearchEngine,
    SearchSpec,
    parse_constraint,
    parse_objective,
    run_search,
)
from service.search.linas import FULL_TRUST_TAU, NO_TRUST_TAU, predictor_trust
from service.search.synthetic import SyntheticValidator, synthetic_macs
from service.supernets.elastic_mbv3 import ArchSpec
from service.supernets.space import ActiveWhen, Gene, SearchSpace

TACTICS = ["linas", "evolutionary", "random"]
ACC = parse_objective("accuracy:max")
LAT = parse_objective("latency@host:min")


@pytest.fixture(scope="module")
def mbv3_space() -> SearchSpace:
    return ArchSpec().search_space()


@pytest.fixture(scope="module")
def small_space() -> SearchSpace:
    """78 distinct networks; blocks 1 and 2 are inactive below their depth."""
    return SearchSpace(
        (
            Gene("depth", (1, 2, 3)),
            Gene("kernel", (3, 5)),
            Gene("b0.width", (8, 16, 32)),
            Gene("b1.width", (8, 16, 32), ActiveWhen("depth", 2)),
            Gene("b2.width", (8, 16, 32), ActiveWhen("depth", 3)),
        )
    )


def quick_spec(tactic: str, budget: int = 30, seed: int = 0, **kw: object) -> SearchSpec:
    defaults: dict[str, object] = {"initial_size": 10, "batch_size": 10, "population_size": 10}
    defaults.update(kw)
    return SearchSpec([ACC, LAT], budget=budget, tactic=tactic, seed=seed, **defaults)  # type: ignore[arg-type]


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def min_form(e: Evaluation) -> np.ndarray:
    return np.array([-e.metrics["accuracy"], e.metrics["latency@host"]])


@pytest.mark.parametrize("tactic", TACTICS)
def test_seeded_runs_are_reproducible(mbv3_space: SearchSpace, tactic: str) -> None:
    runs = [
        run_search(mbv3_space, quick_spec(tactic), SyntheticValidator(mbv3_space)) for _ in "ab"
    ]
    assert [e.config_hash for e in runs[0].evaluations] == [
        e.config_hash for e in runs[1].evaluations
    ]
    assert [r.hypervolume for r in runs[0].iterations] == [
        r.hypervolume for r in runs[1].iterations
    ]
    other = run_search(mbv3_space, quick_spec(tactic, seed=1), SyntheticValidator(mbv3_space))
    assert [e.config_hash for e in other.evaluations] != [
        e.config_hash for e in runs[0].evaluations
    ]


@pytest.mark.parametrize("tactic", TACTICS)
def test_no_network_is_validated_twice_nor_warm_started_ones(
    mbv3_space: SearchSpace, tactic: str
) -> None:
    validator = SyntheticValidator(mbv3_space)
    warm_configs = mbv3_space.sample(np.random.default_rng(5), 6)
    warm = [
        Evaluation(c, mbv3_space.config_hash(c), validator.metrics(c), 0, "warm_start")
        for c in warm_configs
    ]
    engine = run_search(mbv3_space, quick_spec(tactic), validator, warm_start=warm)
    assert validator.calls == 30 == engine.validations_used
    assert len(set(validator.seen)) == len(validator.seen)
    assert not set(validator.seen) & {w.config_hash for w in warm}
    assert engine.done and engine.ask() == []


@pytest.mark.parametrize("tactic", TACTICS)
def test_small_space_is_exhausted_without_repeats(small_space: SearchSpace, tactic: str) -> None:
    validator = SyntheticValidator(small_space)
    engine = run_search(small_space, quick_spec(tactic, budget=200, batch_size=20), validator)
    assert len(validator.seen) == len(set(validator.seen))
    assert validator.calls <= small_space.count_distinct() == 78
    assert engine.done


def test_tell_rejects_a_variant_differing_only_in_inactive_genes(small_space: SearchSpace) -> None:
    engine = SearchEngine(small_space, quick_spec("random"))
    shallow = {"depth": 1, "kernel": 3, "b0.width": 8, "b1.width": 8, "b2.width": 8}
    validator = SyntheticValidator(small_space)
    engine.tell([shallow], validator([shallow]))
    variant = {**shallow, "b1.width": 32, "b2.width": 16}  # inactive at depth 1: same network
    with pytest.raises(ValueError, match="already validated"):
        engine.tell([variant], validator([variant]))
    assert all(small_space.config_hash(c) != small_space.config_hash(shallow) for c in engine.ask())


@pytest.mark.parametrize("tactic", TACTICS)
def test_front_is_feasible_and_non_dominated(mbv3_space: SearchSpace, tactic: str) -> None:
    constraints = [parse_constraint("latency@host<=22"), parse_constraint("accuracy>=80")]
    validator = SyntheticValidator(mbv3_space)
    spec = quick_spec(tactic, budget=40, constraints=constraints)
    engine = run_search(mbv3_space, spec, validator)
    front = engine.front()
    assert front.feasible and front.points and not front.closest
    for point in front.points:
        assert point.metrics["latency@host"] <= 22 and point.metrics["accuracy"] >= 80
    feasible = [
        e
        for e in engine.evaluations
        if e.metrics["latency@host"] <= 22 and e.metrics["accuracy"] >= 80
    ]
    for point in front.points:
        assert not any(dominates(min_form(e), min_form(point)) for e in feasible)
    for e in feasible:  # every feasible point is on the front or weakly dominated by it
        assert any(np.all(min_form(p) <= min_form(e)) for p in front.points)


@pytest.mark.parametrize("tactic", TACTICS)
def test_impossible_constraint_reports_no_feasible_point(
    mbv3_space: SearchSpace, tactic: str
) -> None:
    spec = quick_spec(tactic, budget=20, constraints=[parse_constraint("latency@host<=0.5")])
    front = run_search(mbv3_space, spec, SyntheticValidator(mbv3_space)).front()
    assert front.feasible is False and front.points == [] and front.hypervolume == 0.0
    latencies = [p.metrics["latency@host"] for p in front.closest]
    assert len(latencies) == 5 and latencies == sorted(latencies)


@pytest.mark.parametrize("tactic", TACTICS)
def test_resume_from_history_validates_nothing_twice_and_matches_one_run(
    mbv3_space: SearchSpace, tactic: str
) -> None:
    spec = quick_spec(tactic, budget=32)
    first = SearchEngine(mbv3_space, spec)
    validator = SyntheticValidator(mbv3_space)
    for _ in range(3):
        batch = first.ask()
        first.tell(batch, validator(batch))
    resumed = run_search(mbv3_space, spec, validator, history=first.evaluations)
    assert len(validator.seen) == len(set(validator.seen)) == 32 == resumed.validations_used
    assert len(resumed.iterations) > 3
    assert [r.validations_used for r in resumed.iterations[:3]] == [
        r.validations_used for r in first.iterations
    ]
    straight = run_search(mbv3_space, spec, SyntheticValidator(mbv3_space))
    assert [e.config_hash for e in resumed.evaluations] == [
        e.config_hash for e in straight.evaluations
    ]


def test_exact_metrics_are_computed_not_predicted(mbv3_space: SearchSpace) -> None:
    macs = synthetic_macs(mbv3_space)
    spec = quick_spec("linas", budget=20, constraints=[parse_constraint("macs<=1e8")])
    engine = run_search(mbv3_space, spec, SyntheticValidator(mbv3_space), exact_metrics=macs)
    for e in engine.evaluations:
        assert e.metrics["macs"] == macs(e.config)["macs"]
    front = engine.front()
    assert front.feasible and all(p.metrics["macs"] <= 1e8 for p in front.points)
    assert any(e.metrics["macs"] > 1e8 for e in engine.evaluations)  # the constraint binds
    assert set(engine.iterations[-1].predictor_scores) == {"accuracy", "latency@host"}


@pytest.mark.parametrize(
    ("objectives", "algorithm"),
    [(["accuracy:max"], "ga"), (["accuracy:max", "latency@host:min", "macs:min"], "unsga3")],
)
def test_one_and_three_objectives(
    mbv3_space: SearchSpace, objectives: Sequence[str], algorithm: str
) -> None:
    spec = SearchSpec(
        [parse_objective(o) for o in objectives], budget=24, initial_size=10, batch_size=7
    )
    assert spec.algorithm_name == algorithm
    validator = SyntheticValidator(mbv3_space)
    engine = run_search(mbv3_space, spec, validator, exact_metrics=synthetic_macs(mbv3_space))
    assert validator.calls == 24 and len(set(validator.seen)) == 24
    assert engine.iterations[-1].hypervolume > 0
    if len(objectives) == 1:
        best = max(e.metrics["accuracy"] for e in engine.evaluations)
        assert [p.metrics["accuracy"] for p in engine.front().points] == [best]


def test_ask_repeats_its_batch_until_told(mbv3_space: SearchSpace) -> None:
    engine = SearchEngine(mbv3_space, quick_spec("random"))
    assert engine.ask() == engine.ask()
    with pytest.raises(ValueError, match="lack \\['latency@host'\\]"):
        batch = engine.ask()
        engine.tell(batch, [{"accuracy": 90.0} for _ in batch])


def test_hypervolume_uses_the_stated_bounds_and_reference_point() -> None:
    spec = SearchSpec([ACC, LAT], hv_bounds={"accuracy": (0, 100), "latency@host": (0, 10)})
    scale = HypervolumeScale.from_spec(spec, np.zeros((0, 2)))
    # accuracy 50 % at 5 ms covers a quarter of the box; a point beyond the reference adds nothing.
    assert scale.hypervolume(np.array([[-50.0, 5.0]])) == pytest.approx(0.25)
    assert scale.hypervolume(np.array([[-50.0, 5.0], [-99.0, 11.0]])) == pytest.approx(0.25)
    assert scale.hypervolume(np.array([[-50.0, 5.0], [-75.0, 7.5]])) == pytest.approx(
        0.25 + 0.25 * 0.25
    )


@pytest.mark.slow
def test_agemoea_for_two_objectives_when_numba_is_installed(mbv3_space: SearchSpace) -> None:
    pytest.importorskip("numba")  # pymoo's AGE-MOEA needs it (compiles on first use)
    validator = SyntheticValidator(mbv3_space)
    spec = quick_spec("evolutionary", budget=20, algorithm="agemoea")
    engine = run_search(mbv3_space, spec, validator)
    assert validator.calls == 20 == len(set(validator.seen))
    assert engine.front().feasible


def test_failed_measurements_stay_off_the_front_and_out_of_the_fits(
    small_space: SearchSpace,
) -> None:
    validator = SyntheticValidator(small_space)

    def flaky(configs: list[dict]) -> list[dict[str, float]]:
        results = validator(configs)
        for i in range(0, len(results), 3):  # every third measurement failed
            results[i]["accuracy"] = float("nan")
        return results

    spec = quick_spec("linas", budget=24, initial_size=3, batch_size=4)
    engine = run_search(small_space, spec, flaky)
    assert engine.validations_used == 24 == len(set(validator.seen))
    front = engine.front()
    assert front.feasible and all(np.isfinite(p.metrics["accuracy"]) for p in front.points)
    assert any(e.origin == "linas" for e in engine.evaluations)


@pytest.mark.parametrize("exact_features", [False, True])
def test_predictors_get_exact_features_only_when_the_spec_asks(
    mbv3_space: SearchSpace, exact_features: bool
) -> None:
    spec = quick_spec("linas", budget=20, exact_features=exact_features)
    engine = SearchEngine(mbv3_space, spec, exact_metrics=synthetic_macs(mbv3_space))
    validator = SyntheticValidator(mbv3_space)
    while engine.validations_used < 20:
        batch = engine.ask()
        engine.tell(batch, validator(batch))
    fits = engine._tactic.models.fits  # type: ignore[attr-defined]
    widths = {fit.encoder.n_caller_features for fit in fits.values()}
    assert widths == ({1} if exact_features else {0})


class NoiseAccuracy(SyntheticValidator):
    """Accuracy is a hash of the network (nothing to learn); latency keeps its real shape."""

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        values = super().metrics(config)
        digest = hashlib.sha256(self.space.config_hash(self.space.canonical(config)).encode())
        values["accuracy"] = 50.0 + 40.0 * int.from_bytes(digest.digest()[:4], "big") / 2**32
        return values


def test_predictor_trust_is_linear_between_the_two_taus() -> None:
    def scores(*taus: float) -> dict[str, dict[str, float | str]]:
        return {f"m{i}": {"kendall_tau": t, "model": "ridge"} for i, t in enumerate(taus)}

    assert predictor_trust(scores(0.9, NO_TRUST_TAU)) == 0.0
    assert predictor_trust(scores(0.9, FULL_TRUST_TAU)) == 1.0
    middle = (NO_TRUST_TAU + FULL_TRUST_TAU) / 2
    assert predictor_trust(scores(middle, 0.95)) == pytest.approx(0.5)
    assert predictor_trust(scores(-0.3)) == 0.0
    assert predictor_trust({}) == 1.0  # nothing predicted: nothing to distrust


def test_linas_falls_back_to_evolution_where_the_predictors_rank_noise(
    mbv3_space: SearchSpace,
) -> None:
    spec = quick_spec("linas", budget=60)
    engine = run_search(mbv3_space, spec, NoiseAccuracy(mbv3_space))
    worst_tau = {
        it.iteration: min(float(s["kendall_tau"]) for s in it.predictor_scores.values())
        for it in engine.iterations
        if it.predictor_scores
    }
    assert worst_tau and min(worst_tau.values()) <= NO_TRUST_TAU
    for e in engine.evaluations:
        if e.iteration in worst_tau and worst_tau[e.iteration] <= NO_TRUST_TAU:
            assert e.origin == "evolutionary", (e.iteration, worst_tau[e.iteration])
    assert len(engine.evaluations) == 60
    assert len({e.config_hash for e in engine.evaluations}) == 60


def test_linas_keeps_every_batch_where_the_predictors_rank_well(mbv3_space: SearchSpace) -> None:
    engine = run_search(mbv3_space, quick_spec("linas", budget=60), SyntheticValidator(mbv3_space))
    assert all(
        min(float(s["kendall_tau"]) for s in it.predictor_scores.values()) >= FULL_TRUST_TAU
        for it in engine.iterations
        if it.predictor_scores
    )
    assert {e.origin for e in engine.evaluations} == {"initial", "linas"}


def test_asynchronous_linas_refills_what_came_back_and_never_queues_more_than_a_batch(
    mbv3_space: SearchSpace,
) -> None:
    validate = SyntheticValidator(mbv3_space)
    engine = SearchEngine(mbv3_space, quick_spec("linas", budget=60, batch_size=6))
    initial = engine.ask()
    engine.tell(initial, validate(initial))
    first = engine.ask_more()
    assert len(first) == 6 and engine.in_flight == 6
    engine.tell(first[:2], validate(first[:2]))
    refill = engine.ask_more()
    assert len(refill) == 2 and engine.in_flight == 6  # a batch outstanding again, not 6 more
    hashes = {mbv3_space.config_hash(c) for c in first}
    assert not hashes & {mbv3_space.config_hash(c) for c in refill}
    assert engine.ask_more() == []  # nothing came back since: nothing to add
    rest = first[2:] + refill
    engine.tell(rest, validate(rest))
    assert len(engine.ask_more()) == 6
