"""A search end to end on an OFA family: a random-weight checkpoint in OFA's layout, a generated
image folder, latency from OFA's Note10 table, a MACs constraint, the project's search engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ofa_checkpoints import image_folder, ofa_checkpoint

from latency_tables import estimate_latency, read_ofa_yaml
from service.search.engine import run_search
from service.search.spec import SearchSpec, parse_constraint, parse_objective
from service.supernets.image_folder import split_source
from service.supernets.ofa_mbv3 import load_ofa_mbv3
from service.supernets.space import Config

DATA = Path(__file__).parent / "data"
FAMILY = "ofa-mbv3-w1.2"  # OFA's Note10 table is measured on w1.2's layers (tests/data/README.md)
MACS_BOUND = 500e6


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_search_on_ofa_mbv3_runs_to_a_front(tmp_path: Path) -> None:
    splits = split_source(image_folder(tmp_path / "images"), calibration_images=2)
    supernet = load_ofa_mbv3(
        FAMILY, ofa_checkpoint(tmp_path / "ofa.pth"), data=splits, resolutions=(224,)
    )
    table = read_ofa_yaml(
        (DATA / "ofa_note10_224_lookup_table.yaml").read_bytes(),
        device="note10",
        descriptor={"runtime": "tflite"},
        family=FAMILY,
        known_keys=supernet.all_layer_keys(),
    ).table

    def validate(batch: list[Config]) -> list[dict[str, float]]:
        accuracies = supernet.evaluate_accuracy(batch)
        return [
            {"accuracy": a, "latency@note10": estimate_latency(table, supernet.layer_keys(c))}
            for a, c in zip(accuracies, batch, strict=True)
        ]

    def exact(config: Config) -> dict[str, float]:
        return {"macs": float(supernet.macs(config)), "params": float(supernet.params(config))}

    spec = SearchSpec(
        [parse_objective("accuracy:max"), parse_objective("latency@note10:min")],
        constraints=[parse_constraint(f"macs<={MACS_BOUND:g}")],
        budget=8,
        tactic="random",
        initial_size=4,
        batch_size=4,
        population_size=4,
    )
    engine = run_search(supernet.space, spec, validate, exact_metrics=exact)
    front = engine.front()
    assert front.feasible and front.points
    evaluations = engine.evaluations
    assert len(evaluations) == 8
    for point in front.points:
        assert point.metrics["macs"] <= MACS_BOUND
        assert 0.0 <= point.metrics["accuracy"] <= 100.0
        assert point.metrics["latency@note10"] > 0
        assert point.config["resolution"] == 224
