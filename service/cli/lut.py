"""`hwnas lut build | show | estimate`: profile a supernet's ops into a LUT, summarise a table
file, or estimate configs' latency from one."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lut", help="build or inspect latency lookup tables")
    commands = parser.add_subparsers(dest="lut_command", required=True)

    build = commands.add_parser("build", help="profile every op of a supernet's space")
    build.add_argument("--supernet", required=True, help="supernet family, e.g. mbv3-digits")
    build.add_argument("--checkpoint", default=None, help="weights (default: the family's own)")
    build.add_argument(
        "--random-weights",
        action="store_true",
        help="mbv3-digits only: random weights (latency does not depend on them)",
    )
    build.add_argument("--device", required=True, help="device name recorded in the table")
    build.add_argument("--threads", type=int, default=1)
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument(
        "--passes", type=int, default=5, help="timed passes over all ops, shuffled; fastest kept"
    )
    build.add_argument(
        "--clock",
        choices=("wall", "thread_cpu"),
        default="wall",
        help="wall clock (default) or the thread's CPU time (steadier on a shared machine)",
    )
    build.add_argument("--output", type=Path, required=True, help="table file (.json)")
    build.set_defaults(handler=_build)

    show = commands.add_parser("show", help="summarise a table (.json, .csv or OFA .yaml)")
    show.add_argument("path", type=Path)
    show.add_argument("--supernet", default=None, help="report coverage of this family's ops")
    show.add_argument("--device", default="unknown", help="device name for .csv/.yaml")
    show.set_defaults(handler=_show)

    estimate = commands.add_parser(
        "estimate",
        help="latency of configs from a table (.json, .csv, OFA .yaml): one JSON line per config "
        "with latency_ms (null when keys are missing) and missing_keys; exit 1 if any are",
    )
    estimate.add_argument("--family", required=True, help="supernet family, e.g. ofa-mbv3-w1.2")
    estimate.add_argument("--table", type=Path, required=True)
    estimate.add_argument("--configs", type=Path, required=True, help="JSON configs, one a line")
    estimate.add_argument("--device", default="unknown", help="device name for .csv/.yaml")
    estimate.add_argument(
        "--statistic", choices=("mean", "median", "p90"), default="median", help="mean if absent"
    )
    estimate.set_defaults(handler=_estimate)


def _supernet(family: str, checkpoint: str | None, random_weights: bool) -> Any:
    if random_weights:
        if family != "mbv3-digits":
            raise SystemExit("--random-weights is only available for mbv3-digits")
        from service.supernets.builtin import MobileNetV3DigitsSupernet
        from service.supernets.elastic_mbv3 import ElasticMobileNetV3

        return MobileNetV3DigitsSupernet(ElasticMobileNetV3())
    from service.supernets.registry import load_supernet

    return load_supernet(family, checkpoint)


def _build(args: argparse.Namespace) -> int:
    from latency_tables.builder import build_lut
    from service.evaluation.profile import DeviceProfile

    supernet = _supernet(args.supernet, args.checkpoint, args.random_weights)
    profile = DeviceProfile(
        name=args.device, threads=args.threads, batch_size=args.batch_size, passes=args.passes
    )

    def progress(done: int, total: int, key: str) -> None:
        print(f"[{done}/{total}] {key}", file=sys.stderr)

    table = build_lut(
        supernet,
        profile,
        clock=args.clock,
        command="hwnas " + shlex.join(sys.argv[1:]),
        progress=progress,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table.to_json())
    print(f"wrote {len(table.entries)} entries for device {table.device!r} to {args.output}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from latency_tables import LatencyTableError, load_table_file

    known = None
    family = args.supernet or "unknown"
    if args.supernet:
        known = set(_supernet(args.supernet, None, args.supernet == "mbv3-digits").all_layer_keys())
    try:
        imported = load_table_file(
            args.path,
            device=args.device,
            descriptor={"runtime": "unknown"},
            family=family,
            known_keys=known,
        )
    except LatencyTableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = imported.table
    summary = {
        "device": table.device,
        "family": table.family,
        "descriptor": table.descriptor.model_dump(exclude_none=True),
        "entries": len(table.entries),
        "unmapped_keys": imported.unmapped_keys,
        "missing_keys": sorted(known - set(table.entries)) if known else [],
        "measurement": table.measurement.model_dump(mode="json", exclude_none=True),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from latency_tables import LatencyTableError, load_table_file
    from service.cli.supernet import ConfigLinesError, config_fields, read_config_lines
    from service.supernets.registry import load_supernet

    supernet = load_supernet(args.family)
    try:
        configs = read_config_lines(args.configs, supernet)
        table = load_table_file(
            args.table, device=args.device, descriptor={"runtime": "unknown"}, family=args.family
        ).table
    except (ConfigLinesError, LatencyTableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    known = getattr(supernet, "all_layer_keys", None)
    if callable(known) and not set(known()) & set(table.entries):
        print(
            f"warning: none of the table's {len(table.entries)} keys is an op of {args.family} "
            "(a table for another width, space or resolution?)",
            file=sys.stderr,
        )
    incomplete = 0
    for number, config in configs:
        keys = supernet.layer_keys(config)
        missing = sorted(set(table.missing_keys(keys)))
        latency = (
            None if missing else sum(table.entries[k].latency_ms(args.statistic) for k in keys)
        )
        incomplete += bool(missing)
        row = {"line": number, "latency_ms": latency, "missing_keys": missing}
        print(json.dumps({**row, **config_fields(supernet, config)}))
    return 1 if incomplete else 0
