"""`alip export lammps COMMITTEE -o MODEL`: the model file of the LAMMPS plugin (pair_style alip)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _export(args: argparse.Namespace) -> int:
    if os.path.exists(args.output) and not args.force:
        print(f"alip export: {args.output} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    from alip.models.lammps import export_committee  # imports torch: only when exporting

    try:
        export_committee(args.committee, args.output)
    except (ValueError, OSError) as exc:
        print(f"alip export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} (pair_style alip {args.output})")
    return 0


def add_parser(subparsers: Any) -> None:
    """``alip export lammps COMMITTEE -o MODEL``."""
    export = subparsers.add_parser("export", help="export a committee for another engine (lammps)")
    engines = export.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    p = engines.add_parser("lammps", help="model file for the LAMMPS plugin's pair_style alip")
    p.add_argument("committee", help="committee file written by alip (committee.pt)")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.alip)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=_export)
