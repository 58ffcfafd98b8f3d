"""The built-in `bert-digits`: its shipped checkpoint, its accuracy, a search on it end to end."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from service.cli import main
from service.search.engine import run_search
from service.search.spec import SearchSpec, parse_constraint, parse_objective
from service.supernets.bert_digits import (
    DEFAULT_CHECKPOINT,
    ElasticBertSupernet,
    load_bert_digits,
)
from service.supernets.bert_digits_data import load_splits
from service.supernets.bert_training import BertTrainingSettings, train_and_save
from service.supernets.checksum import CheckpointError, manifest_path, sha256_of
from service.supernets.protocol import Supernet
from service.supernets.registry import family_names, load_supernet
from service.supernets.space import Config

EVALUATED = 1000  # held-out images the search test scores on, to keep it fast


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def supernet() -> ElasticBertSupernet:
    loaded = load_supernet("bert-digits")
    assert isinstance(loaded, ElasticBertSupernet)
    return loaded


def test_the_checkpoint_ships_small_with_its_sha256_and_is_registered(
    supernet: ElasticBertSupernet,
) -> None:
    manifest = json.loads(manifest_path(DEFAULT_CHECKPOINT).read_text())
    assert DEFAULT_CHECKPOINT.stat().st_size <= 2_000_000
    assert manifest["sha256"] == sha256_of(DEFAULT_CHECKPOINT) == supernet.checkpoint_sha256
    assert manifest["family"] == "bert-digits" == supernet.family
    assert "bert-digits" in family_names()
    assert isinstance(supernet, Supernet)


def test_a_replaced_checkpoint_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "bert_digits.pt"
    shutil.copy(DEFAULT_CHECKPOINT, copy)
    shutil.copy(manifest_path(DEFAULT_CHECKPOINT), manifest_path(copy))
    with copy.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="sha256"):
        load_bert_digits(copy)
    with pytest.raises(CheckpointError, match="train bert-digits"):
        load_bert_digits(tmp_path / "missing.pt")


def test_held_out_accuracy_matches_the_manifest_and_capacity_orders_it(
    supernet: ElasticBertSupernet,
) -> None:
    manifest = json.loads(manifest_path(DEFAULT_CHECKPOINT).read_text())
    space = supernet.space
    smallest, largest = supernet.evaluate_accuracy([space.smallest(), space.largest()])
    assert smallest == pytest.approx(manifest["held_out_accuracy"]["smallest"], abs=0.05)
    assert largest == pytest.approx(manifest["held_out_accuracy"]["largest"], abs=0.05)
    assert 60.0 < smallest < largest - 20.0


def test_a_search_on_bert_digits_runs_to_a_front() -> None:
    model = load_bert_digits().model
    splits = load_splits()
    held_out = (splits.held_out_images[:EVALUATED], splits.held_out_labels[:EVALUATED])
    supernet = ElasticBertSupernet(model, held_out=held_out)
    macs_bound = supernet.macs(supernet.space.largest()) / 2

    def validate(batch: list[Config]) -> list[dict[str, float]]:
        return [{"accuracy": a} for a in supernet.evaluate_accuracy(batch)]

    def exact(config: Config) -> dict[str, float]:
        return {"macs": float(supernet.macs(config)), "params": float(supernet.params(config))}

    spec = SearchSpec(
        [parse_objective("accuracy:max"), parse_objective("macs:min")],
        constraints=[parse_constraint(f"macs<={macs_bound:g}")],
        budget=8,
        tactic="random",
        initial_size=4,
        batch_size=4,
        population_size=4,
    )
    engine = run_search(supernet.space, spec, validate, exact_metrics=exact)
    front = engine.front()
    assert front.feasible and front.points
    assert len(engine.evaluations) == 8
    for point in front.points:
        assert point.metrics["macs"] <= macs_bound
        assert 0.0 <= point.metrics["accuracy"] <= 100.0


def test_training_writes_a_checkpoint_that_loads_with_its_manifest(tmp_path: Path) -> None:
    settings = BertTrainingSettings(epochs=2, epoch_size=256, full_network_epochs=1)
    manifest = train_and_save(settings, tmp_path / "bert.pt", log=lambda _: None)
    assert manifest["sha256"] == sha256_of(tmp_path / "bert.pt")
    assert json.loads((tmp_path / "bert.json").read_text()) == manifest
    assert manifest["settings"]["epochs"] == 2
    assert set(manifest["held_out_accuracy"]) == {"smallest", "largest"}
    assert load_bert_digits(tmp_path / "bert.pt").checkpoint_sha256 == manifest["sha256"]


def test_the_cost_command_counts_bert_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], supernet: ElasticBertSupernet
) -> None:
    configs = [supernet.space.smallest(), supernet.space.largest()]
    path = tmp_path / "configs.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in configs) + "\n")
    assert main(["supernet", "cost", "bert-digits", "--configs", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["macs"], r["params"]) for r in rows] == [(161_472, 23_146), (4_237_568, 484_746)]
