"""``alip init``, ``alip run`` and ``alip compare``: the active-learning loop from the shell.

Examples::

    alip init alip.toml                       # example configuration, every key documented
    alip init --explore explore.toml          # the same with exploration ([explore] enabled, MD test set)
    alip run alip.toml                        # new run in run.out
    alip run --resume alip_run                # continue after a crash, a kill, a move or an edit
    alip run --resume alip_run --retry-failed # and label the failed structures again
    alip compare alip.toml --strategies qbc,emc,random --seeds 3 --out cmp
    python -m alip.cli.loop run alip.toml     # the same without the `alip` script
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from alip.cli._common import cli_error

_ERRORS = (ValueError, OSError, RuntimeError)


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


# ----------------------------------------------------------------------------- init
def _configure_init(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("path", nargs="?", default="alip.toml", help="file to write (default alip.toml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument(
        "--explore",
        action="store_true",
        help="an exploration run: candidates from the committee's own MD ([explore] enabled)",
    )
    p.set_defaults(func=run_init)
    return p


def run_init(args: argparse.Namespace) -> int:
    """Write the example configuration."""
    from alip.config import example_toml

    if os.path.exists(args.path) and not args.force:
        print(f"alip init: error: {args.path} exists; pass --force to overwrite", file=sys.stderr)
        return 2
    with open(args.path, "w", encoding="utf-8") as fh:
        fh.write(example_toml(explore=args.explore))
    print(f"wrote {args.path}; edit it, then: alip run {args.path}")
    return 0


# ----------------------------------------------------------------------------- run
def _configure_run(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", nargs="?", help="TOML configuration (see `alip init`), or a run directory to continue")
    p.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR (uses DIR/config.toml, edits checked: see --force)"
    )
    p.add_argument("--out", help="output directory (overrides run.out)")
    p.add_argument("--strategy", help="override run.strategy (qbc, emc, random)")
    p.add_argument("--seed", type=int, help="override run.seed")
    p.add_argument("--device", help="override run.device (cpu, cuda, cuda:N); allowed with --resume")
    p.add_argument(
        "--on-bad",
        choices=("stop", "skip"),
        help="a pool or test frame that cannot be used: stop before any label (default) or skip it "
        "(overrides pool.on_bad)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --resume: apply unsafe edits of DIR/config.toml (strategy, seed, pool, oracle, "
        "training, ...) anyway; recorded in the log and the run's meta",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume (or DIR): label the failed structures again (failures of the "
        "infrastructure are always retried)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log echo")
    p.set_defaults(func=run_run)
    return p


def _print_result(result: Any) -> None:
    from alip.data.store import LabelStore

    print(f"{result.run_dir}: {result.stop_reason}; learning curve:")
    print(f"{'iter':>4} {'labels':>6} {'failed':>6} {'E meV/atom':>11} {'F eV/Å':>8}")
    for r in result.curve:
        failed = "" if r.get("n_failed") is None else r["n_failed"]
        print(
            f"{r['iteration']:>4} {r['n_labels']:>6} {failed:>6} {r['energy_rmse_mev_per_atom']:>11.3f} "
            f"{r['force_rmse_ev_per_ang']:>8.4f}"
        )
    store = LabelStore(os.path.join(result.run_dir, "labels.db"))
    structure, infra = store.failed_ids("structure"), store.failed_ids("infrastructure")
    if structure or infra:
        first = store.get_label((structure or infra)[0])
        print(
            f"failed labels: {len(structure)} of the structure (counted in the budget), {len(infra)} of the "
            f"infrastructure (not counted, retried on resume); first: {first.error if first else '?'}"
        )


def run_run(args: argparse.Namespace) -> int:
    """Start or resume a run; prints the learning curve."""
    from alip.al.loop import run
    from alip.config import load_config

    progress = False if args.no_progress else None
    try:
        resume_dir = args.resume
        if resume_dir is None and args.config and os.path.isdir(args.config):
            resume_dir, args.config = args.config, None  # `alip run DIR` continues DIR
        if resume_dir:
            if args.config or args.out or args.strategy or args.seed is not None:
                raise ValueError(
                    "--resume DIR takes no CONFIG, --out, --strategy or --seed: "
                    "the run continues with DIR/config.toml (edit it; see --force)"
                )
            result = run(
                resume_dir,
                resume=True,
                progress=progress,
                device=args.device,
                force=args.force,
                retry_failed=args.retry_failed,
                on_bad=args.on_bad,
            )
        else:
            if not args.config:
                raise ValueError("give a CONFIG.toml (write one with `alip init`) or --resume DIR")
            if args.force or args.retry_failed:
                raise ValueError("--force and --retry-failed go with --resume DIR (an existing run)")
            cfg = load_config(args.config)
            changes: dict[str, Any] = {}
            if args.strategy:
                changes["strategy"] = args.strategy
            if args.seed is not None:
                changes["seed"] = args.seed
            if changes:
                cfg = cfg.replace(run=changes)
            result = run(cfg, out=args.out, progress=progress, device=args.device, on_bad=args.on_bad)
    except _ERRORS as exc:
        print(cli_error("run", exc), file=sys.stderr)
        return 2
    _print_result(result)
    return 0


# ----------------------------------------------------------------------------- compare
def _configure_compare(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="TOML configuration shared by all runs")
    p.add_argument(
        "--strategies",
        type=_csv,
        default=["qbc", "emc", "random"],
        help="comma-separated strategies (default qbc,emc,random)",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (run.seed, run.seed+1, …; default 3)")
    p.add_argument("--out", default="alip_compare", help="output directory (default alip_compare)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Run the comparison and print the labels each strategy needs."""
    from alip.al.compare import compare

    try:
        progress = False if args.no_progress else None  # None: the config's [run] progress
        result = compare(args.config, args.strategies, args.seeds, args.out, jobs=args.jobs, progress=progress)
    except _ERRORS as exc:
        print(cli_error("compare", exc), file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(result.out, 'learning_curves.csv')}, learning_curves_summary.csv, learning_curves.png")
    for t in result.labels_to_target:
        need = "did not reach" if t["labels_mean"] is None else f"{t['labels_mean']:.0f} labels to reach"
        print(
            f"{t['strategy']:>8}: {need} random's final force RMSE {t['target']:.4f} eV/Å "
            f"(random: {t['reference_labels']:.0f}); per seed, against that seed's random run: "
            f"{t['labels_per_seed']}"
        )
    return 0


# ----------------------------------------------------------------------------- registration
def _add(subparsers: Any, name: str, help_text: str, configure: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return configure(p)


def add_init_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``init`` (write an example configuration)."""
    return _add(subparsers, "init", "write an example run configuration (every key documented)", _configure_init)


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``run`` (start or resume an active-learning run)."""
    return _add(subparsers, "run", "run active learning (or --resume DIR)", _configure_run)


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``compare`` (strategies side by side over seeds)."""
    return _add(subparsers, "compare", "compare strategies over several seeds", _configure_compare)


def add_parser(subparsers: Any) -> None:
    """Add all three sub-commands: init, run, compare."""
    add_init_parser(subparsers)
    add_run_parser(subparsers)
    add_compare_parser(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m alip.cli.loop {init,run,compare} ...``."""
    from alip.cli._common import run_parser, subcommand_parser

    return run_parser(subcommand_parser(__doc__, add_parser), argv)


if __name__ == "__main__":
    raise SystemExit(main())
