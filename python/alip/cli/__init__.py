"""The `alip` command line. Each subcommand lives in its own module of this package and
registers itself through an ``add_parser(subparsers)`` function; helpers they share are in
:mod:`alip.cli._common`.

The sub-command modules import what a command needs inside the function that runs it, so
that ``alip --help``, ``alip generate`` and ``alip featurize`` never import torch (torch is
optional for featurization; tests/test_layers.py checks it)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from alip._version import __version__
from alip.cli import evaluate, export, featurize, generate, import_n2p2, loop, report, select, train
from alip.cli._common import run_parser

__all__ = ["build_parser", "main"]


def _info(args: argparse.Namespace) -> int:
    from alip.core.build import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alip", description="Active learning of machine-learned interatomic potentials."
    )
    parser.add_argument("--version", action="version", version=f"alip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="how the compiled core was built (compiler, OpenMP, CUDA, threads)")
    info.set_defaults(func=_info)
    generate.add_parser(sub)
    featurize.add_parser(sub)
    loop.add_parser(sub)
    report.add_parser(sub)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    select.add_parser(sub)
    export.add_parser(sub)
    import_n2p2.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_parser(build_parser(), argv)
