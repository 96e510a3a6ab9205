"""Synthetic run directories that follow docs/run_directory.md, for the report tests.

Structures, labels (Stillinger–Weber) and the committee checkpoints are real; the
learning-curve numbers are synthetic but known (a power law in the number of labels,
scaled per strategy and seed), so tests can check how the report aggregates them.
One tiny committee is trained per process and saved as every checkpoint.
"""

from __future__ import annotations

import csv
import functools
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from alip.al.run_dir import (
    CHECKPOINTS,
    CONFIG,
    CURVE,
    CURVE_COLUMNS,
    ITERATIONS,
    LABELS,
    TEST,
    checkpoint_name,
    write_curve,
    write_iteration,
)

SMALL = {
    "small_distortion": {"max_atoms": 16},
    "large_distortion": {"max_atoms": 16},
    "random": {"n_atoms": (8, 12)},
    "volume": {"volume_range": (0.88, 1.12)},
}
STRATEGY_SCALE = {"qbc": 1.0, "emc": 1.2, "random": 2.0}


# The smallest pool run of the loop tests (serial oracle, 12 labels, 2 tiny members).
TINY_LOOP = {
    "run": {"n_initial": 6, "batch_size": 3, "budget": 12, "progress": False},
    "labeling": {"executor": "serial"},
    "pool": {"n": 40, "max_atoms": 16, "random_atoms": [8, 12], "max_energy_above": 0.0},
    "test": {"n": 8, "n_volume": 5},
    "training": {"n_members": 2, "hidden": [8], "epochs": 4, "batch_size": 8, "lbfgs_steps": 0},
}


def labeled(structures: Sequence[Atoms]) -> list[Atoms]:
    """Copies of ``structures`` carrying Stillinger–Weber labels (SinglePointCalculator)."""
    from alip.data.io import attach_label
    from alip.data.oracles import make_oracle

    oracle = make_oracle("sw")
    out = []
    for atoms in structures:
        label = oracle.label(atoms)
        assert label.ok, label.error
        a = attach_label(atoms, label.energy, label.forces, label.stress)
        a.info.update(atoms.info)
        out.append(a)
    return out


@functools.cache
def _pool(n: int, seed: int) -> tuple[Atoms, ...]:
    from alip.data.structures import generate_si_pool

    return tuple(generate_si_pool(n, seed=seed, family_kwargs=SMALL))


@functools.cache
def _test_set(n: int) -> tuple[Atoms, ...]:
    from alip.data.structures import generate_si_pool

    return tuple(labeled(generate_si_pool(n, seed=99, family_kwargs=SMALL)))


@functools.cache
def trained_checkpoint_bytes() -> bytes:
    """A 3-member committee trained briefly on 16 labeled structures, as saved bytes."""
    import tempfile

    import alip
    from alip.models.training import TrainConfig, train_committee

    train = labeled(list(_pool(32, 0))[::2])
    cfg = TrainConfig(n_members=3, hidden=(8,), epochs=6, batch_size=8, seed=0, val_fraction=0.0)
    result = train_committee(train, alip.ACSF.default_si(), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.pt")
        result.committee.save(path)
        return Path(path).read_bytes()


def curve_value(strategy: str, seed: int, n_labels: int, metric: str) -> float:
    """The synthetic learning-curve value a fixture run writes."""
    base = {"energy_rmse_mev_per_atom": 400.0, "force_rmse_ev_per_ang": 3.0, "ev_rmse_mev_per_atom": 150.0}[metric]
    return base * STRATEGY_SCALE.get(strategy, 1.5) * (1 + 0.1 * seed) * (n_labels / 8.0) ** -0.5


def write_run_dir(
    path: str | os.PathLike,
    strategy: str = "qbc",
    seed: int = 0,
    n_iterations: int = 3,
    n_initial: int = 8,
    batch: int = 4,
    n_pool: int = 32,
    n_test: int = 16,
    oracle: str | None = "sw",
) -> Path:
    """A run directory with ``n_iterations`` finished iterations (labels.db, test set, jsons, csv)."""
    from alip.data.io import write_extxyz
    from alip.data.oracles import make_oracle
    from alip.data.store import LabelStore

    run = Path(path)
    (run / ITERATIONS).mkdir(parents=True, exist_ok=True)
    (run / CHECKPOINTS).mkdir(exist_ok=True)
    lines = ["[run]", f'strategy = "{strategy}"', f"seed = {seed}"]
    if oracle is not None:
        lines += ["[oracle]", f'spec = "{oracle}"']
    (run / CONFIG).write_text("\n".join(lines) + "\n")
    write_extxyz(run / TEST, list(_test_set(n_test)))
    pool = [a.copy() for a in _pool(n_pool, 0)]
    store = LabelStore(run / LABELS)
    store.add_pool(pool)
    sw = make_oracle("sw")
    rng = np.random.default_rng(1000 * seed + len(strategy))
    order = [int(i) for i in rng.permutation(n_pool)]
    to_label, cursor = order[:n_initial], n_initial
    n_labels = 0
    for it in range(n_iterations):
        store.mark_queued(to_label, it)
        for pid in to_label:
            store.record(pid, sw.label(store.get(pid)), oracle=sw, iteration=it)
        n_labels += len(to_label)
        selected = order[cursor : cursor + batch] if it < n_iterations - 1 else []
        cursor += len(selected)
        ckpt = checkpoint_name(it)
        (run / ckpt).write_bytes(trained_checkpoint_bytes())
        errs = {
            m: curve_value(strategy, seed, n_labels, m)
            for m in ("energy_rmse_mev_per_atom", "force_rmse_ev_per_ang", "ev_rmse_mev_per_atom")
        }
        record = {
            "iteration": it,
            "strategy": strategy,
            "seed": seed,
            "n_labels": n_labels,
            "selected": selected,
            "selected_scores": [float(x) for x in rng.random(len(selected))],
            "selected_families": [pool[i].info["family"] for i in selected],
            "labeled_this_iteration": list(to_label),
            "failed_this_iteration": [],
            "errors": errs,
            "wall_s": {"label": 0.1, "train": 1.0, "score": 0.2},
            "checkpoint": ckpt,
        }
        write_iteration(run, record)
        to_label = selected
    write_curve(run)
    (run / "log.txt").write_text(f"synthetic run {strategy} seed {seed}\n")
    return run


def write_compare_dir(
    path: str | os.PathLike, strategies: Sequence[str] = ("qbc", "random"), seeds: int = 2, n_iterations: int = 3
) -> Path:
    """``DIR/<strategy>_seed<k>/`` run directories plus ``DIR/learning_curves.csv``."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in strategies:
        for k in range(seeds):
            run = write_run_dir(out / f"{s}_seed{k}", strategy=s, seed=k, n_iterations=n_iterations)
            with open(run / CURVE) as fh:
                for r in csv.DictReader(fh):
                    rows.append({"strategy": s, "seed": k, **{c: r[c] for c in CURVE_COLUMNS[:5]}})
    with open(out / "learning_curves.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["strategy", "seed", *CURVE_COLUMNS[:5]])
        w.writeheader()
        w.writerows(rows)
    return out


#: An oracle module: SW labels through a calculator that logs every finished label
#: ("pool:<id>" / "test:<id>") and SIGKILLs its own process in the middle of label k.
COUNTING_ORACLE = textwrap.dedent("""
    import os
    import signal

    from ase.calculators.calculator import Calculator, all_changes

    from alip.data.oracles import make_oracle


    class CountingSW(Calculator):
        implemented_properties = ["energy", "forces", "stress"]

        def __init__(self, log, kill_at=(), flag_dir=""):
            super().__init__()
            self.log, self.kill_at, self.flag_dir = log, list(kill_at), flag_dir
            self.sw = make_oracle("sw")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            done = sum(1 for _ in open(self.log)) if os.path.exists(self.log) else 0
            for k in self.kill_at:
                flag = os.path.join(self.flag_dir, f"killed_at_{k}")
                if done + 1 == k and not os.path.exists(flag):
                    open(flag, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
            energy, forces, stress = self.sw.compute(self.atoms.copy())
            self.results = {"energy": energy, "forces": forces, "stress": stress}
            info = self.atoms.info
            key = f"test:{info['test_id']}" if "test_id" in info else f"pool:{info['pool_id']}"
            with open(self.log, "a") as fh:
                fh.write(key + "\\n")


    def make(log, kill_at=(), flag_dir=""):
        return CountingSW(log, kill_at, flag_dir)
""")
