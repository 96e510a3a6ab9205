"""`alip import-n2p2 DIR -o committee.pt`: an n2p2 potential as a one-member alip committee.

DIR holds n2p2's ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data`` (ZZZ: atomic
number). The committee evaluates the n2p2 network through alip's own descriptor core, so
it works with the ASE calculator and ``alip export lammps`` (one member: no committee spread). Units of the
files: ``--length-unit`` / ``--energy-unit`` (default Bohr and Hartree, RuNNer's atomic
units, which the mlearn potentials use; ``angstrom`` and ``ev`` for files trained on Å/eV
data). Conventions and limits: :mod:`alip.models.n2p2`.

Exit status: 0 written, 2 bad input (missing file, a setting alip cannot represent, an
existing output without --force).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from alip.cli._common import cli_error
from alip.files import atomic_path


def _unit(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _import(args: argparse.Namespace) -> int:
    if os.path.exists(args.output) and not args.force:
        print(cli_error("import-n2p2", f"{args.output} exists (use --force to overwrite)"), file=sys.stderr)
        return 2
    from alip.models.n2p2 import import_n2p2  # imports torch: only when importing

    try:
        committee = import_n2p2(args.directory, _unit(args.length_unit), _unit(args.energy_unit))
        with atomic_path(args.output) as tmp:
            committee.save(tmp)
    except (ValueError, OSError) as exc:
        print(cli_error("import-n2p2", exc), file=sys.stderr)
        return 2
    m = committee.metadata
    print(
        f"wrote {args.output}: 1 member; n2p2 symmetry functions per element {m['n_symmetry_functions']} -> "
        f"{committee.acsf.n_features} alip features, "
        f"cutoff {committee.acsf.cutoff:.4f} Å, hidden {committee.network.hidden} {committee.network.activation}; "
        f"units: 1 length unit = {m['length_unit_angstrom']:.10g} Å, 1 energy unit = {m['energy_unit_ev']:.10g} eV"
    )
    return 0


def add_parser(subparsers: Any) -> None:
    """``alip import-n2p2 DIR -o OUT [--length-unit U] [--energy-unit U] [--force]``."""
    p = subparsers.add_parser(
        "import-n2p2",
        help="an n2p2 potential (input.nn, scaling.data, weights.ZZZ.data) as a one-member committee",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", help="directory with input.nn, scaling.data and weights.ZZZ.data")
    p.add_argument("-o", "--output", required=True, help="committee file to write (e.g. committee.pt)")
    p.add_argument(
        "--length-unit",
        default="bohr",
        help="length unit of the files: bohr (default), angstrom, nm, or Å per unit as a number",
    )
    p.add_argument(
        "--energy-unit",
        default="hartree",
        help="energy unit of the files: hartree (default), ev, rydberg, or eV per unit as a number",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=_import)
