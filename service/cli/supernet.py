"""`hwnas supernet train | baseline | report | cost | register`: reproduce the built-in checkpoint,
describe a supernet, count the exact costs of configs, or register one on a server (uploading its
checkpoint; `service.cli.client_commands`)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from service.cli.client_commands import add_supernet_register


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("supernet", help="train or describe supernets")
    commands = parser.add_subparsers(dest="supernet_command", required=True)

    train = commands.add_parser("train", help="train a built-in supernet from scratch")
    train.add_argument(
        "family", nargs="?", default="mbv3-digits", choices=("mbv3-digits", "bert-digits")
    )
    train.add_argument("--output", type=Path, default=None, help="checkpoint path (.pt)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads", type=int, default=None, help="torch threads (default 2; bert-digits 1)"
    )
    train.set_defaults(handler=_train)

    baseline = commands.add_parser(
        "baseline",
        help="train a plain CNN of the largest architecture alone, with the supernet's data and "
        "schedule, and record its held-out accuracy in the checkpoint's manifest",
    )
    baseline.add_argument("--checkpoint", type=Path, default=None)
    baseline.add_argument("--threads", type=int, default=None)
    baseline.set_defaults(handler=_baseline)

    report = commands.add_parser("report", help="space size, accuracy, cost and latency figures")
    report.add_argument("family", help="supernet family, e.g. mbv3-digits")
    report.add_argument("--checkpoint", default=None)
    report.add_argument("--random", type=int, default=20, help="random sub-networks to measure")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=_report)

    cost = commands.add_parser(
        "cost",
        help="exact MACs and params of configs: one JSON config a line in (OFA form "
        '{"ks", "e", "d", "r"} or gene form), one JSON line per config out',
    )
    cost.add_argument("family", help="supernet family, e.g. ofa-mbv3-w1.0")
    cost.add_argument("--configs", type=Path, required=True, help="JSON configs, one a line")
    cost.add_argument("--checkpoint", default=None, help="weights (costs do not depend on them)")
    cost.set_defaults(handler=_cost)
    add_supernet_register(commands)


def _train_bert(args: argparse.Namespace) -> int:
    from service.supernets.bert_training import BertTrainingSettings, train_and_save

    settings = BertTrainingSettings(seed=args.seed)
    if args.epochs:
        settings = replace(settings, epochs=args.epochs)
    if args.threads:
        settings = replace(settings, threads=args.threads)
    print(json.dumps(train_and_save(settings, args.output), indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.family == "bert-digits":
        return _train_bert(args)
    from service.supernets.builtin import (
        DEFAULT_CHECKPOINT,
        MobileNetV3DigitsSupernet,
    )
    from service.supernets.checksum import manifest_path, sha256_of
    from service.supernets.digits_data import DATASET_NAME, load_splits
    from service.supernets.elastic_mbv3 import ElasticMobileNetV3
    from service.supernets.training import TrainingSettings, train_supernet

    settings = TrainingSettings(seed=args.seed)
    if args.epochs:
        settings = replace(settings, epochs=args.epochs)
    if args.threads:
        settings = replace(settings, threads=args.threads)
    output: Path = args.output or DEFAULT_CHECKPOINT
    output.parent.mkdir(parents=True, exist_ok=True)
    splits = load_splits()
    torch.manual_seed(settings.seed)
    model = ElasticMobileNetV3()
    seconds = train_supernet(model, splits, settings)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, output)
    supernet = MobileNetV3DigitsSupernet(model.eval())
    smallest, largest = supernet.evaluate_accuracy(
        [supernet.space.smallest(), supernet.space.largest()]
    )
    manifest: dict[str, Any] = {
        "family": supernet.family,
        "dataset": DATASET_NAME,
        "sha256": sha256_of(output),
        "bytes": output.stat().st_size,
        "method": f"full network alone for {settings.full_network_epochs} epochs, then the "
        "sandwich rule with in-place distillation (largest on labels; smallest and "
        f"{settings.random_subnets_per_step} random sub-networks on the largest's soft labels)",
        "settings": settings.__dict__,
        "train_seconds": round(seconds, 1),
        "threads": settings.threads,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "held_out_accuracy": {"smallest": smallest, "largest": largest},
    }
    manifest_path(output).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from service.supernets.accuracy import top1_accuracy
    from service.supernets.builtin import DEFAULT_CHECKPOINT
    from service.supernets.checksum import manifest_path
    from service.supernets.digits_data import load_splits
    from service.supernets.elastic_mbv3 import ElasticMobileNetV3
    from service.supernets.training import TrainingSettings, train_plain

    manifest_file = manifest_path(args.checkpoint or DEFAULT_CHECKPOINT)
    manifest = json.loads(manifest_file.read_text())
    settings = TrainingSettings(**manifest["settings"])
    if args.threads:
        settings = replace(settings, threads=args.threads)
    splits = load_splits()
    torch.manual_seed(settings.seed)
    supernet_model = ElasticMobileNetV3()
    plain = supernet_model.build_static(supernet_model.spec.search_space().largest())
    seconds = train_plain(plain, splits, settings)
    accuracy = top1_accuracy(plain.eval(), splits.held_out_images, splits.held_out_labels)
    manifest["held_out_accuracy"]["plain_cnn_largest_architecture"] = accuracy
    manifest["baseline_train_seconds"] = round(seconds, 1)
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["held_out_accuracy"], indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    from service.evaluation.report import build_report, format_report

    report = build_report(args.family, args.checkpoint, n_random=args.random, seed=args.seed)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


class ConfigLinesError(ValueError):
    pass


def read_config_lines(path: Path, supernet: Any) -> list[tuple[int, dict[str, Any]]]:
    """(line number, canonical config) of every non-blank line of a JSON-lines file; raises
    `ConfigLinesError` naming the first bad line."""
    if not path.is_file():
        raise ConfigLinesError(f"{path}: no such file")
    out: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            config = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigLinesError(f"{path}: line {number}: invalid JSON: {error.msg}") from error
        if not isinstance(config, dict):
            raise ConfigLinesError(f"{path}: line {number}: expected a JSON object")
        try:
            out.append((number, dict(supernet.canonical(config))))
        except ValueError as error:
            raise ConfigLinesError(f"{path}: line {number}: {error}") from error
    return out


def config_fields(supernet: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The config's hash and gene form, plus OFA form where the family has one."""
    fields: dict[str, Any] = {"config_hash": supernet.space.config_hash(config), "config": config}
    if hasattr(supernet, "to_ofa"):
        fields["ofa"] = supernet.to_ofa(config)
    return fields


def _cost(args: argparse.Namespace) -> int:
    from service.supernets.registry import load_supernet

    supernet = load_supernet(args.family, args.checkpoint)
    try:
        configs = read_config_lines(args.configs, supernet)
    except ConfigLinesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for number, config in configs:
        row = {"line": number, "macs": supernet.macs(config), "params": supernet.params(config)}
        print(json.dumps({**row, **config_fields(supernet, config)}))
    return 0
