"""Parser helpers shared by the `alip` sub-command modules."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def run_parser(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parses `argv` and runs the chosen sub-command; help and exit code 2 without one."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def subcommand_parser(description: str | None, *add_parsers: Any) -> argparse.ArgumentParser:
    """An `alip` parser with only the sub-commands registered by `add_parsers`."""
    parser = argparse.ArgumentParser(
        prog="alip", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in add_parsers:
        add(sub)
    return parser
