"""``alip train LABELED -o committee.pt``: train a committee on structures labelled elsewhere.

For users who run DFT with their own scripts (the DP-GEN-style cycle): LABELED is an
extxyz file with energies and forces (and stress) as ASE writes them, or an ASE
``*.db``; every frame must carry a label. The committee is written atomically (a
temporary file renamed into place), so OUT is either the old file or the new one.

Examples::

    alip train labeled.extxyz -o committee.pt --members 5 --epochs 200
    alip train labeled.db -o committee.pt --hidden 24,24 --energy-weighting 0.1 --lbfgs-steps 100 --force
    alip train labeled.extxyz -o committee.pt --processes 2   # members 0-2 and 3-4 train side by side
    python -m alip.cli.train train labeled.extxyz -o committee.pt   # without the `alip` script

Exit status: 0 done, 2 bad arguments or input (unlabelled frame, unknown element, empty
file, existing output without --force).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from alip.cli._common import add_allow_nonperiodic, cli_error
from alip.config import VALIDATIONS, TrainingSection
from alip.data.io import is_database
from alip.files import atomic_path

if TYPE_CHECKING:  # the CLI imports torch only when a command needs it
    from alip.core.descriptors import ACSF
    from alip.models.committee import Committee
    from alip.models.evaluation import Evaluation
    from alip.models.training import TrainConfig, TrainResult


#: symmetry functions `alip train --select` chooses by default (0: none chosen, ACSF.training_default())
DEFAULT_SELECT = 0


class InputError(ValueError):
    """A bad input file or argument; the CLI prints it and exits with status 2."""


def read_structures(path: str | os.PathLike) -> list[Atoms]:
    """Every frame of an extxyz file (or any ASE-readable file) or ASE ``*.db``, labels attached."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"no such file: {path}")
    if is_database(path):
        import ase.db

        with ase.db.connect(path, type="db", use_lock_file=False) as db:
            out = []
            for row in db.select(sort="id"):
                atoms = row.toatoms()
                atoms.info.update(row.key_value_pairs)
                out.append(atoms)
            return out
    from ase.io import read

    try:
        frames = read(path, index=":", format="extxyz" if path.endswith((".extxyz", ".xyz")) else None)
    except Exception as exc:  # ASE raises many types for malformed files
        raise InputError(f"cannot read {path}: {exc}") from exc
    return frames if isinstance(frames, list) else [frames]


def check_labeled(atoms_list: Sequence[Atoms], species: Sequence[int], path: str = "") -> None:
    """Raise :class:`InputError` naming the first frame without finite energy and forces or
    with an element outside ``species``."""
    from ase.data import chemical_symbols

    from alip.models.training_data import read_labels

    if not atoms_list:
        raise InputError(f"{path}: no structures")
    allowed = set(int(z) for z in species)
    for i, atoms in enumerate(atoms_list):
        unknown = sorted(set(atoms.numbers.tolist()) - allowed)
        if unknown:
            raise InputError(
                f"{path}: frame {i} has elements {[chemical_symbols[z] for z in unknown]} that the "
                f"descriptor spec does not cover (species {[chemical_symbols[z] for z in allowed]})"
            )
        try:
            energy, forces, _ = read_labels(atoms)
        except Exception as exc:  # no calculator, or one without energy/forces
            raise InputError(f"{path}: frame {i} is not labelled (needs energy and forces): {exc}") from None
        if not np.isfinite(energy) or forces.shape != (len(atoms), 3) or not np.isfinite(forces).all():
            raise InputError(f"{path}: frame {i} has a non-finite energy or forces of the wrong shape")


@dataclass
class TrainSummary:
    """What :func:`train_from_file` did: the committee, the split and the errors."""

    committee: Committee
    result: TrainResult
    n_structures: int
    n_atoms: int
    train_errors: dict[str, float]
    val_errors: dict[str, float] | None  # None without a validation split
    out: str
    test: Evaluation | None = None  # the committee on the test file, when one was given
    test_groups: tuple[str, list[str]] | None = None  # its frames' groups (group_labels)


def save_atomic(committee: Committee, out: str | os.PathLike) -> None:
    """``committee.save`` to a temporary file in OUT's directory, then rename over OUT."""
    with atomic_path(out) as tmp:
        committee.save(tmp)


def read_checked_labeled(path: str | os.PathLike, checks: ACSF, allow_nonperiodic: bool = False) -> list[Atoms]:
    """Every frame of an extxyz file or ASE ``*.db`` as ase.Atoms, checked as featurization checks
    them (an extxyz frame named with its line before ASE reads the file) and labelled with elements
    of ``checks`` (a descriptor, or the candidate pool :func:`train_from_file` selects from); bad
    input raises a ValueError (:class:`alip.data.checked_read.BadInputError`, :class:`InputError`)
    where :func:`alip.data.io.read_labeled` leaves unlabelled frames out."""
    from alip.data.checked_read import check_structures, read_checked

    path = os.fspath(path)
    extxyz = path.endswith((".extxyz", ".xyz")) and os.path.isfile(path)
    if extxyz:
        read_checked(path, checks, "stop", path, allow_nonperiodic)
    structures = read_structures(path)
    if not extxyz:
        check_structures(structures, checks, "stop", path, allow_nonperiodic)
    check_labeled(structures, checks.species, path)
    return structures


def train_from_file(
    labeled: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    acsf: ACSF | None = None,
    force: bool = False,
    select: int = DEFAULT_SELECT,
    allow_nonperiodic: bool = False,
    test: str | os.PathLike | None = None,
    by: str = "auto",
) -> TrainSummary:
    """Read LABELED, train with :func:`alip.models.training.train_committee`, save to OUT atomically.

    Without ``acsf`` the descriptor is ``ACSF.training_default()`` (``cross_windows_si``), or with
    ``select`` > 0 that many functions chosen by CUR from the candidate pool of LABELED's elements on its structures
    (:func:`alip.core.selection.select_acsf`: better with plenty of data, worse with little,
    docs/accuracy_studies.md, "Fourth study"). Errors (``alip.models.training.errors``) are
    computed on the training and validation splits. ``allow_nonperiodic`` accepts frames without
    a cell (clusters, molecules); otherwise they are bad input. ``test``: a labelled file checked
    as LABELED is, before training, and evaluated after it (:mod:`alip.models.evaluation`; its
    groups by ``by`` as :func:`alip.models.evaluation.group_labels` takes it).
    """
    from alip.core.descriptors import ACSF
    from alip.core.selection import candidate_pool, select_acsf
    from alip.data.checked_read import elements_in
    from alip.models.evaluation import evaluate, group_labels
    from alip.models.training import TrainConfig, errors, train_committee

    out = os.fspath(out)
    if os.path.exists(out) and not force:
        raise InputError(f"{out} exists; pass --force to overwrite")
    if select < 0:
        raise InputError(f"select must be >= 0, got {select}")
    if select and acsf is not None:
        raise InputError("give either a descriptor spec or select > 0, not both")
    extxyz = str(labeled).endswith((".extxyz", ".xyz")) and os.path.isfile(labeled)
    fixed = acsf or (ACSF.training_default() if select == 0 else None)
    if fixed is None:  # the pool of the file's elements checks the frames, then selection chooses from it
        if extxyz or is_database(labeled):
            elements = elements_in(labeled, os.fspath(labeled))
        else:
            elements = sorted({int(z) for a in read_structures(labeled) for z in a.numbers})
        checks = candidate_pool(elements)
        if select > len(checks.g2) + len(checks.g5):
            raise InputError(f"select must be at most {len(checks.g2) + len(checks.g5)} (the pool's functions)")
    else:
        checks = fixed
    structures = read_checked_labeled(labeled, checks, allow_nonperiodic)
    test_frames = read_checked_labeled(test, checks, allow_nonperiodic) if test is not None else None  # before training
    acsf = fixed or select_acsf(structures, select, pool=checks)
    result = train_committee(structures, acsf, config or TrainConfig())
    save_atomic(result.committee, out)
    train = [structures[i] for i in result.train_indices]
    val = [structures[i] for i in result.val_indices]
    return TrainSummary(
        result.committee,
        result,
        len(structures),
        sum(len(a) for a in structures),
        errors(result.committee, train),
        errors(result.committee, val, result.held_out) if val else None,
        out,
        evaluate(result.committee, test_frames) if test_frames else None,
        group_labels(test_frames, by) if test_frames else None,
    )


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes like 24,24, got {text!r}")
    return sizes


def _processes(text: str) -> int | str:
    """``auto`` or a positive integer (of --processes and --threads)."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return n


def _format(err: dict[str, float]) -> str:
    s = f"energy {1000 * err['energy_rmse']:.2f} meV/atom, forces {err['force_rmse']:.4f} eV/Å"
    if np.isfinite(err["stress_rmse"]):
        s += f", stress {err['stress_rmse']:.5f} eV/Å³"
    return s


def _run(args: argparse.Namespace) -> int:
    from alip.core.descriptors import ACSF
    from alip.models.training import TrainConfig

    try:
        acsf = ACSF.from_spec(args.spec) if args.spec else None
        given = {
            "n_members": args.members,
            "hidden": args.hidden,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "energy_weighting": args.energy_weighting,
            "weight_energy": args.weight_energy,
            "weight_forces": args.weight_forces,
            "weight_stress": args.weight_stress,
            "bootstrap": args.bootstrap,
            "lbfgs_steps": args.lbfgs_steps,
            "activation": args.activation,
            "dtype": args.dtype,
            "device": args.device,
            "seed": args.seed,
            "val_fraction": args.val_fraction,
            "validation": args.validation,
            "processes": args.processes,
            "threads": args.threads,
        }
        given["verbose"] = not args.no_progress
        cfg = TrainConfig(**{k: v for k, v in given.items() if v is not None})  # the rest: TrainConfig's defaults
        s = train_from_file(
            args.labeled,
            args.out,
            cfg,
            acsf,
            force=args.force,
            select=args.select,
            allow_nonperiodic=args.allow_nonperiodic,
            test=args.test,
            by=args.by,
        )
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(cli_error("train", exc), file=sys.stderr)
        return 2
    r, a = s.result, s.committee.acsf
    source = "--spec" if args.spec else ("chosen by CUR from the pool" if args.select else "ACSF.cross_windows_si()")
    print(f"descriptor: {len(a.g2)} G2 + {len(a.g4)} G4 + {len(a.g5)} G5, cutoff {a.cutoff:g} Å ({source})")
    folds = s.committee.metadata["train_config"]["validation"] == "folds"
    held = f"each member held out {int(r.held_out.sum(1).max())}" if folds else f"{len(r.val_indices)}"
    print(
        f"trained {s.committee.n_members} members on {len(r.train_indices)} of {s.n_structures} structures "
        f"({s.n_atoms} atoms; {held} for validation) in {r.seconds:.1f} s "
        f"({r.processes} process{'es' if r.processes > 1 else ''}, {r.threads or 'default'} torch "
        f"thread{'' if r.threads == 1 else 's'} each) -> {s.out}"
    )
    print(f"RMSE train      ({len(r.train_indices)} structures, committee mean): {_format(s.train_errors)}")
    if s.val_errors is not None:
        what = "each by the members that held it out" if folds else "committee mean"
        print(f"RMSE validation ({len(r.val_indices)} structures, {what}): {_format(s.val_errors)}")
    if s.test is not None:
        from alip.models.evaluation import error_table, markdown_rows

        print(f"test ({len(s.test.n_atoms)} structures of {args.test}, committee mean):")
        print("\n".join(markdown_rows(error_table(s.test, s.test_groups))))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` (a committee from a labelled extxyz / ASE db); the defaults shown are
    :class:`alip.config.TrainingSection`'s, the ones TrainConfig applies."""
    d = TrainingSection()
    p = subparsers.add_parser(
        "train",
        help="train a committee on labelled structures (extxyz or ASE db)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("labeled", help="labelled structures: extxyz (energy/forces/stress as ASE writes them) or *.db")
    p.add_argument("-o", "--out", required=True, help="committee file to write (e.g. committee.pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    p.add_argument("--members", type=int, help=f"committee size K (default {d.n_members})")
    p.add_argument(
        "--hidden", type=_hidden, help=f"hidden layer sizes, e.g. 24,24 (default {','.join(map(str, d.hidden))})"
    )
    p.add_argument("--epochs", type=int, help=f"Adam epochs (default {d.epochs})")
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"structures per Adam step (default {d.batch_size}; 16 for thousands of small cells, README)",
    )
    p.add_argument("--energy-weighting", type=float, help="Δ in eV/atom: weight 1/(1 + (e - e_min)/Δ) (default off)")
    p.add_argument(
        "--weight-energy",
        type=float,
        help=f"loss weight of (ΔE/N)² (default {d.weight_energy}; 4 for small diverse cells, docs/accuracy_studies.md)",
    )
    p.add_argument("--weight-forces", type=float, help=f"loss weight of ΔF² per component (default {d.weight_forces})")
    p.add_argument("--weight-stress", type=float, help=f"loss weight of (ΔW/N)² (default {d.weight_stress})")
    p.add_argument(
        "--bootstrap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"resample the training structures per member (default {'on' if d.bootstrap else 'off'})",
    )
    p.add_argument("--lbfgs-steps", type=int, help=f"full-batch L-BFGS iterations after Adam (default {d.lbfgs_steps})")
    p.add_argument(
        "--activation", help=f"hidden-layer activation: silu, tanh, softplus or celu (default {d.activation})"
    )
    p.add_argument("--dtype", choices=("float32", "float64"), help=f"training precision (default {d.dtype})")
    p.add_argument("--device", help="cpu (default) or cuda[:N]")
    p.add_argument("--seed", type=int, help="seed of split, bootstrap and initialisation (default 0)")
    p.add_argument(
        "--test",
        metavar="FILE",
        help="labelled structures to evaluate the committee on after training (checked before it), as alip "
        "evaluate prints them: over all and per group",
    )
    p.add_argument(
        "--by",
        default="auto",
        help="with --test: info key grouping its frames (auto: config_type, group or family; none: no groups)",
    )
    add_allow_nonperiodic(p)
    p.add_argument(
        "--spec",
        help="descriptor: a preset (default_si, fine_si, fine_g5_si, shells_si, windows_si, cross_windows_si), "
        "a JSON file of ACSF.to_dict() or that JSON inline; default: ACSF.cross_windows_si() (72 functions)",
    )
    p.add_argument(
        "--select",
        type=int,
        default=DEFAULT_SELECT,
        metavar="N",
        help="without --spec: N symmetry functions chosen by CUR from a pool of 196 G2 and G5 on LABELED's "
        "atoms (better with plenty of data, worse with little; docs/accuracy_studies.md, fifth study; "
        "default 0: the fixed ACSF.cross_windows_si())",
    )
    p.add_argument("--val-fraction", type=float, help=f"validation split (default {d.val_fraction})")
    p.add_argument(
        "--validation",
        choices=VALIDATIONS,
        help=f"a validation fold per member, or one split shared by all (default {d.validation})",
    )
    p.add_argument(
        "--processes",
        type=_processes,
        help=f"worker processes training sub-committees side by side, or auto (default {d.processes}: "
        "one per core up to K when the data set repays the start-up)",
    )
    p.add_argument(
        "--threads",
        type=_processes,
        help="torch threads per training process, or auto (default: auto, the usable cores up to 2 in one "
        "process, 1 per worker process; a second thread trained 1.8x faster on one 2-core machine, "
        "docs/accuracy_studies.md)",
    )
    p.add_argument("--no-progress", action="store_true", help="no per-epoch loss lines")
    p.set_defaults(func=_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m alip.cli.train train ...``."""
    from alip.cli._common import run_parser, subcommand_parser

    return run_parser(subcommand_parser(__doc__, add_parser), argv)


if __name__ == "__main__":
    raise SystemExit(main())
