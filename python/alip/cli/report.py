"""``alip report`` and ``alip demo``: figures of a finished run, and the whole mission in one command.

Examples::

    alip demo                                  # Si, SW oracle, qbc/emc/random, report (≈ 3 min, 2 cores)
    alip demo --quick --out demo_small         # a toy-size demo (≈ 1 min)
    alip report alip_run                       # rebuild alip_run/report/ from the run's files
    alip report alip_compare                   # one report for every strategy and seed of a comparison
    python -m alip.cli.report report RUN       # the same without the `alip` script
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from alip.cli._common import cli_error

_ERRORS = (ValueError, FileExistsError, FileNotFoundError, RuntimeError)


def _configure_report(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("dir", help="a run directory (alip run) or a comparison directory (alip compare)")
    p.add_argument(
        "--descriptor-sample",
        type=int,
        default=600,
        metavar="N",
        help="pool structures featurized for the descriptor violins (default 600)",
    )
    p.add_argument("--strict", action="store_true", help="fail on the first figure that cannot be drawn")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Build DIR/report/ and print where it is and its summary table."""
    import json

    from alip.reports.demo import format_subsets, format_table
    from alip.reports.report import build_report, format_explore

    if args.descriptor_sample < 1:
        print("alip report: error: --descriptor-sample must be at least 1", file=sys.stderr)
        return 2
    try:
        index = build_report(
            args.dir, progress=not args.no_progress, strict=args.strict, descriptor_sample=args.descriptor_sample
        )
    except _ERRORS as exc:
        print(cli_error("report", exc), file=sys.stderr)
        return 2
    summary = json.loads((index.parent / "summary.json").read_text())
    print(format_table(summary))
    subsets = format_subsets(summary)
    if subsets:
        print("\n" + subsets)
    explore = format_explore(summary)
    if explore:
        print("\n" + explore)
    for name, why in summary["failures"].items():
        print(f"could not draw {name}: {why}", file=sys.stderr)
    print(f"\nreport: {index}")
    return 0


def _configure_demo(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--out", default="alip_demo", help="output directory (default alip_demo)")
    p.add_argument("--quick", action="store_true", help="toy size (pool 80, 24 labels, one seed): about a minute")
    p.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default 2; 1 with --quick)")
    p.add_argument("--jobs", type=int, default=None, help="runs in parallel (default: cores, at most 2)")
    p.add_argument("--fresh", action="store_true", help="discard an earlier demo in --out instead of resuming it")
    p.add_argument("--no-progress", action="store_true", help="print only the summary")
    p.set_defaults(func=run_demo_cli)
    return p


def run_demo_cli(args: argparse.Namespace) -> int:
    """Run the demo; with --no-progress print just the table and the report path."""
    from alip.reports.demo import run_demo

    if (args.seeds is not None and args.seeds < 1) or (args.jobs is not None and args.jobs < 1):
        print("alip demo: error: --seeds and --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            args.out,
            quick=args.quick,
            seeds=args.seeds,
            jobs=args.jobs,
            progress=not args.no_progress,
            fresh=args.fresh,
        )
    except _ERRORS as exc:
        print(cli_error("demo", exc), file=sys.stderr)
        return 2
    if args.no_progress:
        print(result.table())
        print(f"\nreport: {result.report}")
    return 0


def _add(subparsers: Any, name: str, help_text: str, configure: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return configure(p)


def add_parser(subparsers: Any) -> None:
    """Add ``report`` and ``demo`` to an ``argparse`` subparsers object."""
    _add(subparsers, "report", "rebuild the figures and report page of a run or comparison", _configure_report)
    _add(subparsers, "demo", "run the whole mission on Si (generate, qbc/emc/random, report)", _configure_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m alip.cli.report {report,demo} ...``."""
    from alip.cli._common import run_parser, subcommand_parser

    return run_parser(subcommand_parser(__doc__, add_parser), argv)


if __name__ == "__main__":
    raise SystemExit(main())
