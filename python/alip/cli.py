"""The `alip` command line. Each subcommand lives in its own module and registers
itself through an ``add_parser(subparsers)`` function."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from . import __version__


def _info(args: argparse.Namespace) -> int:
    from . import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import cli_featurize, cli_generate, cli_loop, cli_report, cli_select, cli_train, lammps

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
    cli_train.add_parser(sub)
    cli_select.add_parser(sub)
    lammps.add_parser(sub)
    return parser


def run_parser(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parses `argv` and runs the chosen sub-command; help and exit code 2 without one."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def subcommand_parser(description: str | None, *add_parsers: Any) -> argparse.ArgumentParser:
    """An `alip` parser with only the sub-commands registered by `add_parsers`."""
    parser = argparse.ArgumentParser(prog="alip", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in add_parsers:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_parser(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
