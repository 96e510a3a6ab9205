"""Diverse data (issue 14): does the default committee underfit thousands of small random crystals?

    python bench/diverse.py --write-data /tmp/diverse        # build the set once (7.5 min on 2 cores)
    python bench/diverse.py --data /tmp/diverse --sizes 500,1000,2000,all --models default,former
    python bench/diverse.py --data /tmp/diverse --json diverse.json
    python bench/diverse.py --data /tmp/diverse --relabel /tmp/pbe   # the same geometries, GPAW PBE labels
    python bench/diverse.py --data /tmp/diverse --relabel /tmp/pbe --export-only --compare /tmp/pbe4
    python bench/diverse.py --data /tmp/pbe --sizes 100,all --models default,former

Issue 14 measured underfitting on a set this project does not have (4,352 PBE random crystals
of 1–16 atoms: the then defaults fitted their own training data to 47 meV/atom only). This
bench builds a set of the same kind with a cheap oracle: random cells of 1–16 atoms
(:func:`alip.data.structures.random_structures`, 15–26 Å³/atom, atoms ≥ 2.1 Å apart),
relaxed (positions and cell, FIRE) by the Kumagai (2007) bond-order potential for Si
(``--potential``: any of :class:`alip.data.oracles.ManybodyOracle`'s), a frame every
``--every`` steps of each relaxation, and ``--perturb`` copies of each relaxed cell, strained
(up to ±4 %) and rattled (0.02–0.15 Å). Kept: the frames within ``--max-above`` eV/atom of
the oracle's diamond (the relaxed random cells end between diamond itself and 1 eV/atom
above it, 0.26–0.51 for 80 % of them, as random-search minima in DFT do). Test:
the frames of one cell in ten (a relaxation's frames never straddle the split).

Kumagai is a many-body (bond-order) function, not DFT: the numbers say whether a model of
this class *can* fit diverse small cells when data are plentiful, not what it does on PBE.

``--relabel OUT`` labels a selection of the set's geometries with DFT (``--oracle``, by default
GPAW PBE through :class:`alip.data.oracles.GPAWOracle` with its defaults, 3 k-points per Å⁻¹; at 2
the labels' own noise was of the order of the model's error, README): up to ``--per-cell``
frames of each source cell, the cells in a random order, through alip's own labelling
(:func:`alip.al.labeling.label_batch` into the label store ``OUT/labels.db``, ``--workers``
processes), so that a run stopped at any point keeps every label and resumes where it stopped;
``OUT/{train,test}.extxyz`` then hold the labels so far (the same split by cell, the window
anchored on the new oracle's diamond at :data:`DIAMOND_A0`), ready for ``--data OUT``; ``--compare
OTHER`` sets the labels of two such stores side by side (the same selection at other settings).

Reported per model and training-set size: energy / force / stress RMSE on train, the
cross-validation (each held-out frame predicted by the members that held it out; one
member's error) and the test, side by side; wall time of training; test errors per group
(energy above diamond and atoms per cell).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import FORMER, diamond_properties, former_acsf, in_table_units, split_rmses  # noqa: E402

#: eV/atom above the oracle's diamond; bounds of the energy groups of the test table
ENERGY_GROUPS = (0.3, 0.6)
#: atoms per cell; bounds of the size groups of the test table
SIZE_GROUPS = (4, 8)


def diamond_energy(oracle: Any) -> float:
    """The oracle's energy per atom of relaxed diamond (the window's anchor)."""
    from ase.build import bulk
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    d = bulk("Si", "diamond", a=5.43)
    d.calc = oracle.make_calculator(d)
    FIRE(FrechetCellFilter(d), logfile=None).run(fmax=1e-4, steps=500)
    return float(d.get_potential_energy() / len(d))


def _labelled(atoms: Atoms, oracle: Any, **info: Any) -> Atoms:
    """A copy of ``atoms`` with the oracle's energy, forces and stress stored (extxyz-ready)."""
    a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    energy, forces, stress = oracle.compute(a.copy())
    a.info.update(info)
    a.calc = SinglePointCalculator(a, energy=energy, forces=forces, stress=stress)
    return a


def diverse_set(
    n_cells: int,
    seed: int = 0,
    potential: str = "kumagai",
    max_above: float = 1.0,
    every: int = 10,
    perturb: int = 4,
    max_steps: int = 300,
    progress: bool = True,
) -> tuple[list[Atoms], float]:
    """Relaxation frames and perturbed relaxed copies of ``n_cells`` random cells (1–16 atoms),
    labelled by ``potential``, within ``max_above`` eV/atom of its diamond; and that diamond
    energy per atom. Every frame has ``info["cell"]`` (its source cell), ``info["kind"]``
    (``"relaxation"`` or ``"perturbed"``) and ``info["above_diamond"]`` (eV/atom)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from tqdm.auto import tqdm

    from alip.data.oracles import make_oracle
    from alip.data.structures import random_structures

    oracle = make_oracle({"type": "manybody", "potential": potential})
    e_diamond = diamond_energy(oracle)
    rng = np.random.default_rng(seed)
    cells = random_structures(n_cells, seed=seed, n_atoms=(1, 16), volume_per_atom=(15.0, 26.0), min_dist=2.1)
    frames: list[Atoms] = []
    for c, cell in enumerate(tqdm(cells, desc="relaxing random cells", disable=not progress, unit="cell")):
        a = cell.copy()
        a.calc = oracle.make_calculator(a)
        opt = FIRE(FrechetCellFilter(a), logfile=None)
        snaps: list[Atoms] = []
        opt.attach(lambda frames, atoms: frames.append(atoms.copy()), every, snaps, a)
        opt.run(fmax=0.05, steps=max_steps)
        if opt.nsteps % every:  # else the callback has stored the last frame already
            snaps.append(a.copy())
        for s in snaps:
            frames.append(_labelled(s, oracle, cell=c, kind="relaxation"))
        for _ in range(perturb):
            p = a.copy()
            eps = rng.uniform(-0.04, 0.04, (3, 3))
            p.set_cell(p.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            p.positions += rng.normal(0.0, rng.uniform(0.02, 0.15), p.positions.shape)
            frames.append(_labelled(p, oracle, cell=c, kind="perturbed"))
    above = np.array([f.get_potential_energy() / len(f) - e_diamond for f in frames])
    keep = np.isfinite(above) & (above <= max_above)  # anchored on diamond itself
    for f, e in zip(frames, above):
        f.info["above_diamond"] = float(e)
    return [f for f, k in zip(frames, keep) if k], e_diamond


#: the relabelled set's reference: diamond Si at GPAW's PBE lattice constant (README, mlearn section)
DIAMOND_A0 = 5.476


def relabel_jobs(frames: list[Atoms], per_cell: int, seed: int = 0) -> list[Atoms]:
    """Geometries to relabel, in the order to label them: the source cells in a random order
    (test cells among them, so that any prefix of the labels is a usable set), up to ``per_cell``
    frames of each cell drawn at random. Each keeps ``cell`` and ``kind``, and records ``split``
    (``"train"`` / ``"test"``, :func:`split_by_cell`'s) and the source oracle's ``above_source``."""
    by_cell: dict[int, list[Atoms]] = {}
    for f in frames:
        by_cell.setdefault(int(f.info["cell"]), []).append(f)
    rng = np.random.default_rng(seed)
    test_cells = {int(f.info["cell"]) for f in split_by_cell(frames)[1]}
    jobs: list[Atoms] = []
    for c in rng.permutation(sorted(by_cell)):
        fs = by_cell[int(c)]
        for i in sorted(rng.choice(len(fs), size=min(per_cell, len(fs)), replace=False)):
            f = fs[i]
            a = Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=True)
            a.info.update(
                cell=int(c),
                kind=str(f.info["kind"]),
                split="test" if int(c) in test_cells else "train",
                above_source=float(f.info["above_diamond"]),
                family="diverse",
            )
            jobs.append(a)
    return jobs


def relabel(
    frames: list[Atoms],
    out: str,
    oracle_spec: dict[str, Any],
    per_cell: int = 3,
    max_labels: int | None = None,
    workers: int = 2,
    timeout: float | None = None,
    seed: int = 0,
) -> None:
    """Label a selection of ``frames``' geometries (:func:`relabel_jobs`) with ``oracle_spec``
    into the label store ``out/labels.db``, in order, ``workers`` at a time; pool id 0 is diamond
    Si at :data:`DIAMOND_A0` (the energy reference). Rerunning resumes: labels already in the
    store are never computed again, and the store refuses a different selection."""
    from ase.build import bulk

    from alip.al.labeling import label_batch
    from alip.data.store import LabelStore

    os.makedirs(out, exist_ok=True)
    store = LabelStore(os.path.join(out, "labels.db"))
    selection = {"per_cell": per_cell, "seed": seed, "n_frames": len(frames), "oracle": oracle_spec}
    if len(store) == 0:
        diamond = bulk("Si", "diamond", a=DIAMOND_A0)
        diamond.info.update(family="reference", kind="diamond", split="reference")
        store.add_pool([diamond] + relabel_jobs(frames, per_cell, seed))
        store.update_meta(selection=selection)
    elif store.meta.get("selection") != json.loads(json.dumps(selection)):
        raise SystemExit(f"{out}/labels.db holds another selection: {store.meta.get('selection')}")
    ids = sorted(store.ids())
    if max_labels is not None:
        ids = ids[: max_labels + 1]
    done = len([i for i in ids if store.status(i) == "labeled"])
    print(f"# {len(ids)} structures to label, {done} labelled already", flush=True)
    res = label_batch(oracle_spec, ids, store, max_workers=workers, max_in_flight=workers, timeout=timeout)
    print(f"# labelled {res.n_labeled}, failed {res.n_failed} in {res.wall_time:.0f} s", flush=True)


def oracle_diamond(oracle_spec: dict[str, Any], n: int = 11) -> dict[str, float]:
    """a0 (Å) and B0 (GPa) of the oracle's diamond Si: a Birch–Murnaghan fit over a0 ± 3 % as
    the models' (:func:`accuracy.diamond_properties`), on the 8-atom cubic cell, whose k-point
    grid stays the same over that range (the 2-atom cell's changes at 2 points per Å⁻¹)."""
    from ase.build import bulk

    from alip.data.oracles import make_oracle
    from alip.models.eos import fit_eos

    oracle = make_oracle(oracle_spec)
    vols, ens = [], []
    for a in DIAMOND_A0 * np.linspace(0.97, 1.03, n):
        at = bulk("Si", "diamond", a=float(a), cubic=True)
        vols.append(at.get_volume() / len(at))
        ens.append(oracle.compute(at)[0] / len(at))
    fit = fit_eos(np.array(vols), np.array(ens))
    return {"a0": fit["a0"], "B0": fit["B0"]}


def export_relabelled(
    out: str, max_above: float = 1.0, max_labels: int | None = None
) -> tuple[list[Atoms], list[Atoms]]:
    """``out/{train,test}.extxyz`` from the store's labels so far: ``above_diamond`` from the new
    oracle's diamond (pool id 0), frames above ``max_above`` eV/atom left out (counted); with
    ``max_labels`` only the first that many frames of the selection (what :func:`relabel` with
    the same ``max_labels`` labels: a longer run's prefix)."""
    from alip.data.store import LabelStore

    store = LabelStore(os.path.join(out, "labels.db"))
    if store.status(0) != "labeled":
        raise SystemExit("the diamond reference (pool id 0) is not labelled yet")
    ref = store.get(0)
    e_diamond = ref.get_potential_energy() / len(ref)
    train: list[Atoms] = []
    test: list[Atoms] = []
    dropped = 0
    for a in store.labeled():
        if a.info["split"] == "reference" or (max_labels is not None and a.info["pool_id"] > max_labels):
            continue
        a.info["above_diamond"] = float(a.get_potential_energy() / len(a) - e_diamond)
        if a.info["above_diamond"] > max_above:
            dropped += 1
            continue
        (test if a.info["split"] == "test" else train).append(a)
    write(os.path.join(out, "train.extxyz"), train)
    write(os.path.join(out, "test.extxyz"), test)
    counts = store.counts()
    seconds = store.label_times()[1]
    print(
        f"# {len(train)} train / {len(test)} test frames ({dropped} above {max_above} eV/atom left out; store "
        f"{counts}); diamond {e_diamond:.4f} eV/atom; {np.sum(seconds):.0f} s of labelling",
        flush=True,
    )
    return train, test


def label_differences(out: str, other: str) -> dict[str, Any]:
    """Per-frame differences of the labels in ``other/labels.db`` minus those in ``out/labels.db``
    over the pool ids labelled in both (the same selection, e.g. at denser k-points): energy
    per atom (meV/atom) and force RMS (eV/Å) per id; over the frames (id 0, the diamond reference,
    reported apart) the standard deviation of the energy differences and the force RMS."""
    from alip.data.store import LabelStore

    a, b = LabelStore(os.path.join(out, "labels.db")), LabelStore(os.path.join(other, "labels.db"))

    def geometries(store: Any) -> dict[str, Any]:  # the selection but for its oracle
        return {k: v for k, v in store.meta.get("selection", {}).items() if k != "oracle"}

    if geometries(a) != geometries(b):
        raise SystemExit(f"{out} and {other} hold different selections")
    rows = {}
    for i in sorted(set(a.ids("labeled")) & set(b.ids("labeled"))):
        x, y = a.get(i), b.get(i)
        de = 1e3 * (y.get_potential_energy() - x.get_potential_energy()) / len(x)
        rows[i] = (de, float(np.sqrt(np.mean((y.get_forces() - x.get_forces()) ** 2))), len(x))
    frames = [v for i, v in rows.items() if i != 0]
    if not frames:
        raise SystemExit(f"no frame is labelled in both {out} and {other}")
    de = np.array([v[0] for v in frames])
    return {
        "rows": rows,
        "diamond_mev": rows[0][0] if 0 in rows else float("nan"),
        "n": len(frames),
        "energy_std_mev": float(de.std()),
        "energy_range_mev": (float(de.min()), float(de.max())),
        "force_rms": float(np.sqrt(np.mean(np.square([v[1] for v in frames])))),
    }


def split_by_cell(frames: list[Atoms], every: int = 10) -> tuple[list[Atoms], list[Atoms]]:
    """Train and test: the frames of every ``every``-th source cell are the test set."""
    test = [f for f in frames if f.info["cell"] % every == every - 1]
    train = [f for f in frames if f.info["cell"] % every != every - 1]
    return train, test


def group(atoms: Atoms) -> tuple[int, int, str]:
    """The test table's group: energy above diamond and atoms per cell (two indices to sort by,
    and the name)."""
    e, n = atoms.info["above_diamond"], len(atoms)
    lo, hi = ENERGY_GROUPS
    i = int(e >= lo) + int(e >= hi)
    energy = (f"< {lo}", f"{lo}–{hi}", f"≥ {hi}")[i]
    a, b = SIZE_GROUPS
    j = int(n > a) + int(n > b)
    size = (f"1–{a}", f"{a + 1}–{b}", f"{b + 1}–16")[j]
    return i, j, f"{energy} eV/atom, {size} atoms"


def nested_subset(train: list[Atoms], size: int | None, seed: int = 0) -> list[Atoms]:
    """``size`` training frames drawn by whole source cells, nested across sizes (the same
    permutation of the cells for every size); ``None``: all."""
    if size is None or size >= len(train):
        return list(train)
    cells = sorted({f.info["cell"] for f in train})
    order = np.random.default_rng(seed).permutation(cells)
    by_cell: dict[int, list[Atoms]] = {}
    for f in train:
        by_cell.setdefault(f.info["cell"], []).append(f)
    out: list[Atoms] = []
    for c in order:
        if len(out) >= size:
            break
        out += by_cell[c]
    return out


#: name -> (TrainConfig overrides, descriptor or None for the default): the defaults, the
#: defaults before issue 14's studies (36 functions, G4, bootstrap, batch 16), and the defaults
#: with wider networks (two hidden layers of 64) or with 16 structures per Adam step; besides
#: these (:func:`model_spec`), ``energy<w>`` is the defaults with the energies weighted ``w``
#: times (``energy4``: ``alip train --weight-energy 4``, the README's option for small diverse
#: cells), ``select<n>`` the defaults on ``n`` functions chosen by CUR from the candidate pool
#: on the training frames (``alip train --select n``) and ``cutoff<r>`` the default descriptor
#: with its cutoff at ``r`` Å
MODELS: dict[str, Callable[[], tuple[dict[str, Any], Any]]] = {
    "default": lambda: ({}, None),
    "former": lambda: (dict(FORMER), former_acsf()),
    "wide": lambda: ({"hidden": [64, 64]}, None),
    "batch16": lambda: ({"batch_size": 16}, None),
}
ENERGY_WEIGHTED = re.compile(r"energy(\d+(?:\.\d+)?)")
SELECTED = re.compile(r"select(\d+)")
CUTOFF = re.compile(r"cutoff(\d+(?:\.\d+)?)")
#: the shortest cutoff ``cutoff<r>`` takes (Å): the pool's and the windows' nearest functions sit at 1.8 Å
MIN_CUTOFF = 3.0
#: the patterned names, for messages
PATTERNS = f"energy<w> (w > 0, e.g. energy4), select<n> (n > 0) or cutoff<r> (r ≥ {MIN_CUTOFF:g} Å)"


def _selected(n: int) -> Callable[[list[Atoms]], Any]:
    """The descriptor of ``select<n>``: ``n`` functions chosen by CUR on the training frames."""

    def choose(frames: list[Atoms]) -> Any:
        from alip.core.selection import candidate_pool, select_acsf

        return select_acsf(frames, n, pool=candidate_pool(sorted(set(np.concatenate([f.numbers for f in frames])))))

    return choose


def _with_cutoff(r: float) -> Any:
    """The default descriptor with its cutoff at ``r`` Å."""
    from alip.core.descriptors import ACSF

    return ACSF.from_dict(ACSF.training_default().to_dict() | {"cutoff": r})


def model_spec(model: str) -> tuple[dict[str, Any], Any] | None:
    """The (TrainConfig overrides, descriptor) of ``model``: a key of :data:`MODELS`, ``energy<w>``
    (a positive energy weight ``w``), ``select<n>`` (n ≥ 1; the descriptor is then a function of
    the training frames) or ``cutoff<r>`` (r ≥ :data:`MIN_CUTOFF`); None for an unknown name."""
    if model in MODELS:
        return MODELS[model]()
    if m := ENERGY_WEIGHTED.fullmatch(model):
        return ({"weight_energy": float(m.group(1))}, None) if float(m.group(1)) > 0 else None
    if m := SELECTED.fullmatch(model):
        return ({}, _selected(int(m.group(1)))) if int(m.group(1)) > 0 else None
    if m := CUTOFF.fullmatch(model):
        return ({}, _with_cutoff(float(m.group(1)))) if float(m.group(1)) >= MIN_CUTOFF else None
    return None


def train_and_score(
    train: list[Atoms], test: list[Atoms], model: str, seed: int = 0, threads: int | str = "auto"
) -> dict[str, Any]:
    """Train ``model`` (a name :func:`model_spec` knows) on ``train`` with ``threads`` torch
    threads; RMSEs on train / cross-validation / test (meV/atom, eV/Å, GPa over the 9 components),
    per test group, wall time."""
    from alip.models.calculator import Calculator
    from alip.models.training import TrainConfig, errors, train_committee

    spec = model_spec(model)
    if spec is None:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODELS)}, {PATTERNS}")
    overrides, acsf = spec
    cfg = TrainConfig(**overrides, seed=seed, threads=threads)
    t0 = time.perf_counter()
    res = train_committee(train, acsf(train) if callable(acsf) else acsf, cfg)
    out: dict[str, Any] = {"model": model, "n_train": len(train), "wall_s": time.perf_counter() - t0}
    splits = {"train": [train[i] for i in res.train_indices], "val": [train[i] for i in res.val_indices], "test": test}
    out |= split_rmses(res, splits)
    by_group: dict[tuple[int, int, str], list[Atoms]] = {}
    for f in test:
        by_group.setdefault(group(f), []).append(f)
    out["test_groups"] = {
        g[2]: {"n": len(fs)} | in_table_units(errors(res.committee, fs)) for g, fs in sorted(by_group.items())
    }
    out["diamond"] = diamond_properties(lambda atoms: Calculator(res.committee))
    return out


def _row(r: dict[str, Any]) -> str:
    def three(key: str, fmt: str) -> str:
        return " / ".join(format(r[s][key], fmt) for s in ("train", "val", "test"))

    return (
        f"| {r['model']} | {r['n_train']} | {three('energy_rmse', '.2f')} | {three('force_rmse', '.4f')} | "
        f"{three('stress_rmse', '.3f')} | {r['wall_s']:.0f} |"
    )


def _threads(value: str) -> int | str:
    """``--threads``: "auto" or a positive integer."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"threads must be 'auto' or a positive integer, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write-data", metavar="DIR", help="build the set, write DIR/{train,test}.extxyz, and stop")
    p.add_argument("--data", metavar="DIR", help="read DIR/{train,test}.extxyz (from --write-data)")
    p.add_argument("--cells", type=int, default=400, help="random cells to relax (default 400)")
    p.add_argument("--potential", default="kumagai", help="the oracle: a matscipy potential (default kumagai)")
    p.add_argument("--max-above", type=float, default=1.0, help="eV/atom above diamond kept (default 1)")
    p.add_argument("--every", type=int, default=10, help="a frame every N relaxation steps (default 10)")
    p.add_argument("--perturb", type=int, default=4, help="strained and rattled copies per relaxed cell")
    p.add_argument("--sizes", default="all", help="training-set sizes, comma-separated ('all': the whole set)")
    p.add_argument(
        "--models",
        default="default,former",
        help=", ".join(MODELS) + f", {PATTERNS} (comma-separated)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_threads, default="auto", help="torch threads of a training, or auto")
    p.add_argument("--json", help="write the results here")
    p.add_argument(
        "--relabel",
        metavar="OUT",
        help="label geometries of --data with --oracle into OUT/labels.db (resumable), write OUT/{train,test}.extxyz",
    )
    p.add_argument("--oracle", default='{"type": "gpaw"}', help="--relabel's oracle (JSON; GPAW's defaults)")
    p.add_argument("--per-cell", type=int, default=3, help="--relabel: frames per source cell (default 3)")
    p.add_argument(
        "--max-labels", type=int, help="--relabel: label (with --export-only: write) the first N of the selection only"
    )
    p.add_argument("--workers", type=int, default=2, help="--relabel: labelling processes (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, help="--relabel: seconds per label (default 3600)")
    p.add_argument("--export-only", action="store_true", help="--relabel: write OUT's extxyz files, label nothing")
    p.add_argument("--oracle-diamond", action="store_true", help="--relabel: also fit the oracle's diamond E–V")
    p.add_argument("--compare", metavar="OTHER", help="--relabel: label differences OTHER − OUT, frame by frame")
    args = p.parse_args(argv)

    if args.write_data:
        t0 = time.perf_counter()
        frames, e_diamond = diverse_set(args.cells, args.seed, args.potential, args.max_above, args.every, args.perturb)
        train, test = split_by_cell(frames)
        os.makedirs(args.write_data, exist_ok=True)
        write(os.path.join(args.write_data, "train.extxyz"), train)
        write(os.path.join(args.write_data, "test.extxyz"), test)
        above = np.array([f.info["above_diamond"] for f in frames])
        sizes = np.array([len(f) for f in frames])
        print(
            f"{len(train)} train / {len(test)} test frames from {args.cells} cells ({args.potential}, diamond "
            f"{e_diamond:.4f} eV/atom): {np.mean(sizes):.1f} atoms per frame, above diamond median "
            f"{np.median(above):.3f}, max {above.max():.3f} eV/atom; {time.perf_counter() - t0:.0f} s"
        )
        return 0
    if not args.data:
        p.error("give --data DIR (build it with --write-data DIR)")
    models = [m.strip() for m in args.models.split(",")]
    for m in models:  # before reading or labelling anything
        if model_spec(m) is None:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}, {PATTERNS}")
    train = read(os.path.join(args.data, "train.extxyz"), ":")
    test = read(os.path.join(args.data, "test.extxyz"), ":")
    if args.relabel:
        if not args.export_only:
            relabel(
                train + test,
                args.relabel,
                json.loads(args.oracle),
                args.per_cell,
                args.max_labels,
                args.workers,
                args.timeout,
                args.seed,
            )
        export_relabelled(args.relabel, args.max_above, args.max_labels)
        if args.compare:
            d = label_differences(args.relabel, args.compare)
            for i, (de, df, n) in d["rows"].items():
                print(f"# id {i} ({n} atoms): {de:+.1f} meV/atom, forces {df:.3f} eV/Å")
            lo, hi = d["energy_range_mev"]
            print(
                f"# {args.compare} − {args.relabel}, {d['n']} frames: energy std {d['energy_std_mev']:.1f} meV/atom "
                f"({lo:+.1f} to {hi:+.1f}), force RMS {d['force_rms']:.3f} eV/Å; "
                f"diamond {d['diamond_mev']:+.1f} meV/atom",
                flush=True,
            )
        if args.oracle_diamond:
            d = oracle_diamond(json.loads(args.oracle))
            print(f"# the oracle's diamond: a0 {d['a0']:.4f} Å, B0 {d['B0']:.1f} GPa", flush=True)
        return 0
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    print(f"# {len(train)} train / {len(test)} test frames; load {os.getloadavg()[0]:.2f}", flush=True)
    print("| model | train frames | E RMSE train / val / test (meV/atom) | F RMSE (eV/Å) | σ RMSE (GPa) | wall (s) |")
    print("|---|---:|---|---|---|---:|", flush=True)
    results = []
    for size in sizes:
        subset = nested_subset(train, size, args.seed)
        for m in models:
            r = train_and_score(subset, test, m, args.seed, args.threads)
            results.append(r)
            print(_row(r), flush=True)
    print("\nTest energy RMSE (meV/atom) / force RMSE (eV/Å) per group, the largest training set:")
    last = [r for r in results if r["n_train"] == max(x["n_train"] for x in results)]
    groups = list(last[0]["test_groups"])  # in the order of group()
    print("| group | n | " + " | ".join(r["model"] for r in last) + " |")
    print("|---|---:|" + "---|" * len(last))
    for g in groups:
        n = last[0]["test_groups"][g]["n"]
        cells = [f"{r['test_groups'][g]['energy_rmse']:.2f} / {r['test_groups'][g]['force_rmse']:.3f}" for r in last]
        print(f"| {g} | {n} | " + " | ".join(cells) + " |")
    print("\nDiamond Si from each model (a0 Å, B0 / C11 / C12 / C44 relaxed GPa):")
    print("| model | training frames | a0 | B0 | C11 | C12 | C44 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        d = r["diamond"]
        print(
            f"| {r['model']} | {r['n_train']} | {d['a0']:.3f} | {d['B0']:.1f} | {d['C11']:.1f} | {d['C12']:.1f} | "
            f"{d['C44']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"load_end": os.getloadavg()[0], "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
