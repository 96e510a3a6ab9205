"""Parser helpers shared by the `alip` sub-command modules."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: Python keyword arguments named in library messages, and the flags that set them.
_FLAGS: tuple[tuple[str, str], ...] = (
    ("resume=True", "--resume"),
    ("overwrite=True", "--overwrite"),
    ("on_bad='skip'", "--on-bad skip"),
    ('on_bad="skip"', "--on-bad skip"),
    ("allow_nonperiodic=True", "--allow-nonperiodic"),
    ("force=True", "--force"),
    ("retry_failed=True", "--retry-failed"),
)


def cli_error(command: str, exc: BaseException | str) -> str:
    """``alip COMMAND: error: ...`` with the Python keyword arguments of library messages
    spoken as the command-line flags that set them."""
    text = str(exc)
    for python, flag in _FLAGS:
        text = text.replace(python, flag)
    return f"alip {command}: error: {text}"


def add_allow_nonperiodic(parser: argparse.ArgumentParser) -> None:
    """``--allow-nonperiodic``, the flag library messages name as ``allow_nonperiodic=True``."""
    parser.add_argument(
        "--allow-nonperiodic",
        action="store_true",
        help="accept structures without a cell as non-periodic clusters (default: a bad frame)",
    )


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
