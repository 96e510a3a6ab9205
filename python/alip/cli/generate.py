"""``alip generate``: write a seeded pool of structures to extxyz or a label store.

Example::

    alip generate si --n 2000 --seed 0 --out pool.extxyz
    python -m alip.cli.generate si --n 20 --out pool.db
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from alip.cli._common import cli_error
from alip.config import FAMILIES, POLYMORPHS

_EXTXYZ = (".extxyz", ".xyz")


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("system", choices=["si"], help="chemical system (only 'si' so far)")
    p.add_argument("--n", type=int, default=2000, help="number of structures (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output file: .extxyz/.xyz, or .db for a new label store")
    p.add_argument(
        "--families",
        type=_csv,
        default=list(FAMILIES),
        help=f"comma-separated families (default all: {','.join(FAMILIES)})",
    )
    p.add_argument(
        "--fractions", type=_floats, default=None, help="comma-separated weights of the families (default equal)"
    )
    p.add_argument(
        "--polymorphs",
        type=_csv,
        default=["diamond"],
        help=f"polymorphs of the volume series (default diamond; any of {','.join(POLYMORPHS)})",
    )
    p.add_argument(
        "--volume-range", type=_floats, default=[0.85, 1.15], help="V/V0 range of the volume series (default 0.85,1.15)"
    )
    p.add_argument("--max-atoms", type=int, default=64, help="largest distorted supercell (default 64)")
    p.add_argument("--start-id", type=int, default=0, help="first pool id (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_generate)
    return p


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``generate`` sub-command to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "generate",
        help="generate a seeded pool of structures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(p)


def run_generate(args: argparse.Namespace) -> int:
    """Handler of ``alip generate``; returns the exit code (2 on bad input)."""
    from alip.data.io import write_extxyz
    from alip.data.store import LabelStore
    from alip.data.structures import generate_si_pool

    out = str(args.out)
    try:
        if args.n < 1:
            raise ValueError(f"--n must be at least 1, got {args.n}")
        if len(args.volume_range) != 2:
            raise ValueError("--volume-range needs two numbers, e.g. 0.85,1.15")
        if not out.endswith(_EXTXYZ + (".db",)):
            raise ValueError(f"--out must end in .extxyz, .xyz or .db, got {out!r}")
        if os.path.exists(out) and not args.force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite")
        kwargs: dict[str, dict[str, Any]] = {}
        if "volume" in args.families:
            kwargs["volume"] = {"polymorphs": args.polymorphs, "volume_range": tuple(args.volume_range)}
        if "small_distortion" in args.families:
            kwargs["small_distortion"] = {"max_atoms": args.max_atoms}
        if "large_distortion" in args.families:
            kwargs["large_distortion"] = {"max_atoms": args.max_atoms}
        pool = generate_si_pool(
            args.n,
            seed=args.seed,
            families=args.families,
            fractions=args.fractions,
            start_id=args.start_id,
            family_kwargs=kwargs,
            progress=not args.no_progress,
        )
        if os.path.exists(out):
            os.remove(out)  # --force, and only once the new pool exists
        if out.endswith(".db"):
            LabelStore(out).add_pool(pool)
        else:
            write_extxyz(out, pool)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        print(cli_error("generate", exc), file=sys.stderr)
        return 2
    counts = Counter(a.info["family"] for a in pool)
    summary = ", ".join(f"{fam} {counts[fam]}" for fam in args.families)
    print(f"wrote {len(pool)} structures to {out} ({summary})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m alip.cli.generate si --n 20 --out x.extxyz``."""
    parser = _configure(
        argparse.ArgumentParser(
            prog="alip generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    )
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
