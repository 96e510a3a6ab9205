"""``alip evaluate COMMITTEE LABELED``: a committee's errors on labelled structures, over all and
per group, with the committee's spread beside them.

Examples::

    alip evaluate committee.pt test.extxyz                       # groups from info: config_type, group or family
    alip evaluate committee.pt test.extxyz --by temperature --json errors.json
    alip evaluate committee.pt test.db --out predictions.extxyz  # labels + alip_* predictions per frame
    alip evaluate committee.pt test.extxyz --plots figures       # parity and spread-vs-error plots by group

Units: energy meV/atom, forces eV/Å (per component), stress GPa over the 6 Voigt components
(of the frames that carry a stress label; — where a group has none);
errors are the committee mean minus the label; "E mean" is the mean signed energy error (an
offset), "E std" the committee's mean energy spread and "max εF" its largest force deviation.
``--out`` writes every frame with its labels and the committee's ``alip_energy`` (eV),
``alip_energy_std`` (eV/atom) and, where the frame has a cell, ``alip_stress`` (Voigt, eV/Å³) in
``info``, ``alip_forces`` (eV/Å) and ``alip_force_deviation`` (eV/Å) in ``arrays``: the parity
plot's data. Exit status: 0 done, 2 bad arguments or input (unlabelled frame, an element the
committee lacks, existing output without --force), checked before anything is computed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from alip.cli._common import add_allow_nonperiodic, cli_error


def _write_predictions(path: str, frames: list, ev: Any) -> None:
    from ase.io import write

    from alip.files import atomic_path

    off = ev.offsets
    annotated = []
    for s, a in enumerate(frames):
        b = a.copy()
        b.calc = a.calc
        b.info["alip_energy"] = float(ev.predicted_energy[s])
        b.info["alip_energy_std"] = float(ev.energy_std[s]) / 1e3
        if math.isfinite(ev.predicted_stress[s, 0]):
            b.info["alip_stress"] = ev.predicted_stress[s].tolist()
        b.arrays["alip_forces"] = ev.predicted_forces[off[s] : off[s + 1]].copy()
        b.arrays["alip_force_deviation"] = ev.force_deviation[off[s] : off[s + 1]].copy()
        annotated.append(b)
    with atomic_path(path, ".extxyz") as tmp:
        write(tmp, annotated, format="extxyz")


def _write_plots(directory: str, label: str, ev: Any, groups: tuple[str, list[str]] | None) -> list[str]:
    """The report's parity and spread-vs-error figures of this evaluation, one color per group."""
    import numpy as np

    from alip.reports.plots import TestSetPrediction, plot_parity, plot_uncertainty_vs_error

    names = np.asarray(groups[1] if groups is not None else ["all"] * len(ev.n_atoms))
    e_pred = ev.predicted_energy / ev.n_atoms
    prediction = TestSetPrediction(
        label=label,
        families=names,
        e_true=e_pred - ev.energy_error / 1e3,
        e_pred=e_pred,
        e_std=ev.energy_std / 1e3,
        atom_families=np.repeat(names, ev.n_atoms),
        f_true=ev.predicted_forces - ev.force_error,
        f_pred=ev.predicted_forces,
        f_dev=ev.force_deviation,
    )
    os.makedirs(directory, exist_ok=True)
    return [
        plot_parity([prediction], os.path.join(directory, "parity.png"), groups[0] if groups else "frames"),
        plot_uncertainty_vs_error([prediction], os.path.join(directory, "uncertainty_vs_error.png")),
    ]


def _output_problem(args: argparse.Namespace) -> str | None:
    """Why the outputs cannot be written, found before anything is computed."""
    for flag, path in (("--out", args.out), ("--json", args.json)):
        if not path:
            continue
        if os.path.isdir(path):
            return f"{flag} {path} is a directory"
        if os.path.exists(path) and not args.force:
            return f"{path} exists; pass --force to overwrite"
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return f"{flag}: the directory {parent} does not exist"
    if args.out and not args.out.endswith((".extxyz", ".xyz")):
        return f"--out must be an .extxyz file, got {args.out}"
    if args.plots:
        if os.path.exists(args.plots) and not os.path.isdir(args.plots):
            return f"--plots {args.plots} is a file, not a directory"
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.plots))):
            return f"--plots: the directory above {args.plots} does not exist"
    return None


def _run(args: argparse.Namespace) -> int:
    problem = _output_problem(args)
    if problem:
        print(cli_error("evaluate", problem), file=sys.stderr)
        return 2
    try:
        from alip.cli.train import read_checked_labeled
        from alip.models.committee import Committee
        from alip.models.evaluation import error_table, evaluate, group_labels, markdown_rows

        if not os.path.isfile(args.committee):
            raise ValueError(f"no committee file {args.committee}")
        committee = Committee.load(args.committee)
        frames = read_checked_labeled(args.labeled, committee.acsf, args.allow_nonperiodic)
        groups = group_labels(frames, args.by)
        ev = evaluate(committee, frames)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(cli_error("evaluate", exc), file=sys.stderr)
        return 2
    table = error_table(ev, groups)
    key = None if groups is None else groups[0]
    if groups is not None and all(n == "(none)" for n in groups[1]):
        print(f"note: no frame has info[{key!r}]; one group", file=sys.stderr)
    members = f"{committee.n_members} member{'s' if committee.n_members != 1 else ''}"
    print(f"{args.committee} ({members}) on {len(frames)} frames ({int(ev.n_atoms.sum())} atoms) of {args.labeled}:")
    print("\n".join(markdown_rows(table)))
    try:
        if args.out:
            _write_predictions(args.out, frames, ev)
            print(f"wrote {args.out} (labels and alip_* predictions per frame)")
        if args.plots:
            label = os.path.basename(args.labeled)
            paths = _write_plots(args.plots, label, ev, groups)
            print("wrote " + ", ".join(paths))
        if args.json:
            from alip.files import atomic_write_json  # null where a group has no such label

            atomic_write_json(
                args.json, {"committee": args.committee, "labeled": args.labeled, "by": key, "groups": table}
            )
            print(f"wrote {args.json}")
    except OSError as exc:
        print(cli_error("evaluate", f"cannot write the output: {exc}"), file=sys.stderr)
        return 2
    return 0


def add_parser(subparsers: Any) -> None:
    """``alip evaluate COMMITTEE LABELED``."""
    p = subparsers.add_parser(
        "evaluate",
        help="a committee's errors on labelled structures, over all and per group",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("committee", help="committee file (alip train, alip run, alip import-n2p2)")
    p.add_argument("labeled", help="labelled structures: extxyz (energy/forces/stress as ASE writes them) or *.db")
    p.add_argument(
        "--by",
        default="auto",
        help="info key whose values group the frames; auto (default): the first of config_type, group, family "
        "that the frames carry; none: no groups",
    )
    p.add_argument("--out", help="write the frames with the committee's predictions (.extxyz)")
    p.add_argument("--json", help="write the table (per group) as JSON")
    p.add_argument("--plots", metavar="DIR", help="write parity.png and uncertainty_vs_error.png (by group) here")
    p.add_argument("--force", action="store_true", help="overwrite existing --out / --json files")
    add_allow_nonperiodic(p)
    p.set_defaults(func=_run)
