"""`hwnas search`: run a search locally on a supernet, validating on this host, print the front."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from service.search import Evaluation, FrontResult, SearchEngine, SearchSpec, run_search
from service.search.metrics import LATENCY, MetricName
from service.search.spec import (
    DEFAULT_EXACT_FEATURES,
    DEFAULT_PREDICTORS,
    TACTICS,
    parse_constraint,
    parse_objective,
)
from service.supernets.space import SearchSpace

LOCAL_METRICS = ("accuracy", "macs", "params")
LOCAL_DEVICE = "host"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a supernet locally (validation on this host) and print the Pareto front",
        description=__doc__,
    )
    parser.add_argument("--supernet", required=True, help="supernet family, e.g. mbv3-digits")
    parser.add_argument("--checkpoint", default=None, help="checkpoint path (family default)")
    parser.add_argument(
        "--objective",
        action="append",
        required=True,
        help="metric[@device]:max|min, repeatable, e.g. accuracy:max, latency@host:min",
    )
    parser.add_argument(
        "--constraint",
        action="append",
        default=[],
        help="metric[@device]<=value or >=value, repeatable, e.g. 'macs<=5e6'",
    )
    parser.add_argument("--budget", type=int, default=100, help="networks to validate")
    parser.add_argument("--tactic", choices=TACTICS, default="linas")
    parser.add_argument("--algorithm", default=None, help="ga, nsga2, agemoea or unsga3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--predictor",
        action="append",
        default=None,
        help="LINAS candidate predictor, repeatable, e.g. --predictor ridge --predictor monotone "
        f"(default: {', '.join(DEFAULT_PREDICTORS)})",
    )
    parser.add_argument(
        "--exact-features",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_EXACT_FEATURES,
        help="give LINAS's predictors the exact MACs and params as features (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for latency")
    parser.add_argument("--batch-size", type=int, default=32, help="latency batch size")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_search)


def build_spec(args: argparse.Namespace) -> SearchSpec:
    """The spec from the command line; ValueError naming what to fix."""
    spec = SearchSpec(
        objectives=[parse_objective(text) for text in args.objective],
        constraints=[parse_constraint(text) for text in args.constraint],
        budget=args.budget,
        tactic=args.tactic,
        seed=args.seed,
        algorithm=args.algorithm,
        predictors=tuple(args.predictor or DEFAULT_PREDICTORS),
        exact_features=args.exact_features,
    )
    for metric in spec.metrics:
        name = MetricName.parse(metric)
        if name == MetricName.latency(LOCAL_DEVICE):
            continue
        if name.name == LATENCY:
            raise ValueError(
                f"{metric!r}: the local search measures latency on this host only; use "
                f"'latency@{LOCAL_DEVICE}' (other devices need the service with agents or LUTs)"
            )
        if metric not in LOCAL_METRICS:
            raise ValueError(
                f"unknown metric {metric!r}; the local search knows {list(LOCAL_METRICS)} "
                f"and 'latency@{LOCAL_DEVICE}'"
            )
    return spec


def _search(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from service.evaluation.profile import DeviceProfile
    from service.evaluation.validation import exact_metrics, validate_subnets
    from service.supernets.registry import load_supernet

    try:
        spec = build_spec(args)
    except ValueError as exc:
        print(f"hwnas search: {exc}", file=sys.stderr)
        return 2
    supernet = load_supernet(args.supernet, args.checkpoint)
    devices = []
    if any(MetricName.parse(m).is_latency for m in spec.metrics):
        devices = [DeviceProfile(LOCAL_DEVICE, threads=args.threads, batch_size=args.batch_size)]
    with tqdm(total=spec.budget, unit="net", desc="validations", file=sys.stderr) as bar:

        def progress(record: Any) -> None:
            bar.update(record.validations_used - bar.n)
            bar.set_postfix(hv=f"{record.hypervolume:.4f}", front=record.front_size)

        engine = run_search(
            supernet.space,
            spec,
            lambda configs: validate_subnets(supernet, configs, devices),
            exact_metrics=lambda config: exact_metrics(supernet, config),
            progress=progress,
        )
    front = engine.front()
    if args.json:
        print(json.dumps(search_report(engine, front), indent=2))
    else:
        print(front_table(spec, front, supernet.space))
    return 0


def search_report(engine: SearchEngine, front: FrontResult) -> dict[str, Any]:
    return {
        "spec": engine.spec.to_json(),
        "validations_used": engine.validations_used,
        "hypervolume_scale": engine.scale.to_json() if engine.scale is not None else None,
        "front": front.to_json(),
        "iterations": [r.to_json() for r in engine.iterations],
    }


def front_table(spec: SearchSpec, front: FrontResult, space: SearchSpace | None = None) -> str:
    """The front (or, with nothing feasible, the closest points) as a plain text table; with
    `space`, the config column shows active genes only."""
    metrics = [*spec.metrics, *(m for m in ("macs", "params") if m not in spec.metrics)]
    if front.feasible:
        title = f"Pareto front: {len(front.points)} points, hypervolume {front.hypervolume:.4f}"
        rows = front.points
    else:
        constraints = ", ".join(str(c) for c in spec.constraints)
        title = f"No feasible point for {constraints}; the {len(front.closest)} closest:"
        rows = front.closest
    return "\n".join([title, *_table(rows, metrics, space)])


def _table(
    points: Sequence[Evaluation], metrics: Sequence[str], space: SearchSpace | None
) -> list[str]:
    header = ["#", "hash", *metrics, "config"]
    body = [
        [
            str(i),
            p.config_hash[:10],
            *(f"{p.metrics.get(m, float('nan')):.6g}" for m in metrics),
            " ".join(
                f"{k}={v}"
                for k, v in p.config.items()
                if space is None or space.is_active(p.config, k)
            ),
        ]
        for i, p in enumerate(points)
    ]
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header) - 1)]
    return [
        "  ".join([*(cell.rjust(w) for cell, w in zip(r[:-1], widths, strict=True)), r[-1]])
        for r in [header, *body]
    ]
