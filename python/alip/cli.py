"""The `alip` command line. Each subcommand lives in its own module and registers
itself through an ``add_parser(subparsers)`` function."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import __version__


def _info(args: argparse.Namespace) -> int:
    from . import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import cli_featurize, cli_generate, cli_loop, cli_report

    parser = argparse.ArgumentParser(
        prog="alip", description="Active learning of machine-learned interatomic potentials."
    )
    parser.add_argument("--version", action="version", version=f"alip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="how the compiled core was built (compiler, OpenMP, CUDA, threads)")
    info.set_defaults(func=_info)
    cli_generate.add_parser(sub)
    cli_featurize.add_parser(sub)
    cli_loop.add_parser(sub)
    cli_report.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
