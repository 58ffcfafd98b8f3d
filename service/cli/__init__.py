"""The `hwnas` command line: each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Modules exposing `register(subparsers)`; each adds its own subcommands.
COMMAND_MODULES: tuple[str, ...] = (
    "service.cli.supernet",
    "service.cli.serve",
    "service.cli.lut",
    "service.cli.search",
    "service.cli.agent",
    "service.cli.client_commands",
    "service.cli.tokens",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwnas", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)
