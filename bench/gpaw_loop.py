"""The exploration loop with real DFT: GPAW on 8-atom Si cells (issue 12's "one small run").

Three steps, each resumable (files are written once and read back):

    OMP_NUM_THREADS=1 python bench/gpaw_loop.py --out gpaw_run test      # GPAW's own test set
    OMP_NUM_THREADS=1 python bench/gpaw_loop.py --out gpaw_run run --budget 32
    python bench/gpaw_loop.py --out gpaw_run report [--retrain]          # errors, label times, E–V

``test`` labels with GPAW, at the run's DFT settings, a 9-point E–V series of the 8-atom
diamond cell (a = 5.476 Å × [0.96, 1.04]) and thermal frames of the 8-atom cell at 300 and
900 K (geometries from Stillinger–Weber MD: GPAW's own MD was too slow here).
``run`` is an ordinary ``alip run`` (OUT/run) with the GPAW oracle, the explore stage from
the 8-atom diamond seed at 300/900 K and that test set.  ``report`` prints the labels and
the oracle's seconds per label (labels.db), the committee's errors on the test frames per
iteration, and the final committee's E–V fit against GPAW's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from explore_evidence import TRAINING  # noqa: E402

#: DFT settings of every label and test frame: a small, cheap GPAW setup (seconds per label).
GPAW_SPEC = {"type": "gpaw", "ecut": 300.0, "kpt_density": 2.0}  # 3×3×3 k-points on the 8-atom cell
A0_GPAW = 5.476  # Å, GPAW PBE (README's mlearn section); centre of the E–V series


def make_test(path: str, n_frames: int, seed: int) -> None:
    """The test set, GPAW-labeled: the E–V series and ``n_frames`` thermal frames at 300 K and
    at 900 K.  The frames' geometries come from Stillinger–Weber Langevin MD of the 8-atom
    cell at GPAW's a0 (1 ps to equilibrate, then a frame every 100 fs): GPAW's own MD cost
    20+ s per step here (no symmetry), a single point 10–25 s."""
    from ase import units
    from ase.build import bulk
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from alip.data.io import attach_label, write_extxyz
    from alip.data.oracles import make_oracle
    from alip.explore.trajectories import thermalize

    oracle, sw = make_oracle(GPAW_SPEC), make_oracle("sw")
    todo = []
    for a in A0_GPAW * np.linspace(0.96, 1.04, 9):
        atoms = bulk("Si", "diamond", a=float(a), cubic=True)
        atoms.info.update(family="volume", a=float(a))
        todo.append(atoms)
    rng = np.random.default_rng(seed)
    for temperature in (300.0, 900.0):
        atoms = bulk("Si", "diamond", a=A0_GPAW, cubic=True)
        atoms.calc = sw.make_calculator(atoms)
        thermalize(atoms, temperature, rng)
        atoms.set_constraint(FixCom())
        dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False, rng=rng)
        dyn.run(1000)
        for k in range(n_frames):
            dyn.run(100)
            frame = atoms.copy()
            frame.set_constraint()
            frame.info.update(family=f"md_crystal_{temperature:.0f}K", md_step=1000 + 100 * (k + 1), md_source="sw")
            todo.append(frame)
    frames, times = [], []
    for atoms in todo:
        t0 = time.perf_counter()
        e, f, s = oracle.compute(atoms)
        times.append(time.perf_counter() - t0)
        frames.append(attach_label(atoms, e, f, s))
        print(
            f"{atoms.info['family']}: {e / len(atoms):.4f} eV/atom, max |F| {np.abs(f).max():.2f} eV/Å, "
            f"{times[-1]:.0f} s",
            flush=True,
        )
    write_extxyz(path + ".tmp", frames)
    os.replace(path + ".tmp", path)
    print(f"{len(frames)} test structures -> {path}; {np.mean(times):.0f} s per GPAW label")


def config(out: str, test: str, budget: int) -> dict:
    """The alip run: GPAW oracle, explore from the 8-atom diamond cell at 300/900 K."""
    return {
        "run": {
            "out": out,
            "seed": 0,
            "n_initial": 8,
            "batch_size": 6,
            "budget": budget,
            "progress": False,
            "threads": 1,
            "strategy": "qbc",
        },
        "training": dict(TRAINING, lbfgs_steps=100),
        "oracle": {"spec": GPAW_SPEC, "timeout": 1800},
        "labeling": {"executor": "process", "max_workers": 1},
        "test": {"file": test},
        "explore": {
            "enabled": True,
            "supercell": [1, 1, 1],
            "temperatures": [300.0, 900.0],
            "ensembles": ["nvt", "npt"],
            "ramp": 2,
            "steps": 300,
            "growth": 1.5,
            "max_steps": 1500,
            "every": 10,
            "max_trajectories": 6,
            "trust_lo": 0.1,
            "trust_hi": 1.0,
            "initial_rattle": 0.1,
        },
    }


def report(out: str, retrain: bool = False) -> None:
    from ase.build import bulk

    from alip.al.run_dir import read_iterations
    from alip.data.io import read_extxyz
    from alip.data.store import LabelStore
    from alip.models.calculator import Calculator
    from alip.models.eos import fit_eos

    run = os.path.join(out, "run")
    store = LabelStore(os.path.join(run, "labels.db"))
    n_atoms, secs = store.label_times()
    print(
        f"labels: {store.counts()}; oracle time per label: mean {secs.mean():.1f} s, "
        f"median {np.median(secs):.1f} s, range {secs.min():.1f}–{secs.max():.1f} s ({len(secs)} labels, "
        f"{sorted(set(n_atoms.tolist()))} atoms)"
    )
    from collections import Counter

    temps = Counter(str(store.get(i).info.get("explore_temperature", "initial")) for i in store.ids("labeled"))
    print("labels by origin temperature (K):", dict(sorted(temps.items())))
    print(
        "| iteration | labels | crystal 300 K F / E | crystal 900 K F / E | E–V E RMSE meV/atom | candidates / frames |"
    )
    print("|---|---|---|---|---|---|")
    for r in read_iterations(run):
        bf = r["errors_by_family"]
        cells = [
            f"{bf[k]['force_rmse_ev_per_ang']:.3f} / {bf[k]['energy_rmse_mev_per_atom']:.1f}"
            for k in ("md_crystal_300K", "md_crystal_900K")
        ]
        ex = r.get("explore", {})
        cand = f"{ex.get('n_candidates', '–')} / {ex.get('trust', {}).get('n_frames', '–')}" if ex else "–"
        print(
            f"| {r['iteration']} | {r['n_labels']} | {cells[0]} | {cells[1]} | "
            f"{bf['volume']['energy_rmse_mev_per_atom']:.1f} | {cand} |"
        )
    test = read_extxyz(os.path.join(out, "test.extxyz"))
    vol = [a for a in test if a.info["family"] == "volume"]
    v = np.array([a.get_volume() / len(a) for a in vol])
    e_dft = np.array([a.get_potential_energy() / len(a) for a in vol])
    calc = Calculator(os.path.join(run, "committee.pt"))
    e_model = []
    for a in vol:
        b = bulk("Si", "diamond", a=float(a.info["a"]), cubic=True)
        b.calc = calc
        e_model.append(b.get_potential_energy() / len(b))
    e_model = np.array(e_model)
    fits = {}
    for name, sel in (("±4 %", slice(None)), ("±2 %", slice(2, 7))):
        fd, fm = fit_eos(v[sel], e_dft[sel]), fit_eos(v[sel], e_model[sel])
        rmse = 1e3 * np.sqrt(np.mean((e_model[sel] - fm["e0"] - (e_dft[sel] - fd["e0"])) ** 2))
        fits[name] = {"gpaw": fd, "committee": fm, "shape_rmse_mev": rmse}
        print(
            f"E–V (8-atom cell, a = {A0_GPAW} Å {name}, {len(v[sel])} points): GPAW a0 {fd['a0']:.3f} Å, "
            f"B0 {fd['B0']:.1f} GPa; committee a0 {fm['a0']:.3f} Å, B0 {fm['B0']:.1f} GPa, e0 off by "
            f"{1e3 * (fm['e0'] - fd['e0']):+.1f} meV/atom, shape RMSE (minima aligned) {rmse:.1f} meV/atom"
        )
    strains = [a.info.get("explore_temperature") is None for a in store.labeled()]
    vols = np.array([a.get_volume() / len(a) for a in store.labeled()])
    print(
        f"labeled volumes: {vols.min():.2f}–{vols.max():.2f} Å³/atom (a = {(8 * vols.min()) ** (1 / 3):.3f}–"
        f"{(8 * vols.max()) ** (1 / 3):.3f} Å); {sum(strains)} initial, {len(strains) - sum(strains)} explored"
    )
    if retrain:  # the same labels, trained with the evidence runs' default training
        from explore_evidence import TRAININGS

        from alip.al.loop import evaluate_test_set
        from alip.core.descriptors import ACSF
        from alip.models.training import TrainConfig, train_committee

        tc = TrainConfig(**dict(TRAININGS["default"], energy_weighting=None), seed=0, threads=1)
        t0 = time.perf_counter()
        committee = train_committee(store.labeled(), ACSF.default_si(), tc).committee
        wall = time.perf_counter() - t0
        _, bf = evaluate_test_set(committee, test)
        e_re = np.array([committee.predict([a]).energies.mean() / len(a) for a in vol])
        for name, sel in (("±4 %", slice(None)), ("±2 %", slice(2, 7))):
            fd, fm = fit_eos(v[sel], e_dft[sel]), fit_eos(v[sel], e_re[sel])
            fits[f"retrained {name}"] = {"gpaw": fd, "committee": fm}
            print(f"retrained ({wall:.0f} s), E–V {name}: a0 {fm['a0']:.3f} Å, B0 {fm['B0']:.1f} GPa")
        print(
            "retrained with the default training: "
            + ", ".join(
                f"{k} F {x['force_rmse_ev_per_ang']:.3f} eV/Å E {x['energy_rmse_mev_per_atom']:.1f} meV/atom"
                for k, x in bf.items()
            )
        )
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump({"eos": fits, "label_seconds": secs.tolist()}, fh, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpaw_run")
    ap.add_argument("step", choices=["test", "run", "report"])
    ap.add_argument("--budget", type=int, default=32)
    ap.add_argument("--retrain", action="store_true", help="report: also retrain the labels with the default training")
    ap.add_argument("--frames", type=int, default=5, help="test frames per temperature (300 and 900 K)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    test = os.path.abspath(os.path.join(args.out, "test.extxyz"))
    if args.step == "test":
        if os.path.isfile(test):
            print(f"{test} exists")
        else:
            make_test(test, args.frames, seed=0)
    elif args.step == "run":
        from alip.al.loop import run

        t0 = time.time()
        res = run(config(os.path.join(args.out, "run"), test, args.budget), resume=True)
        print(f"run: {time.time() - t0:.0f} s; {res}")
    else:
        report(args.out, args.retrain)


if __name__ == "__main__":
    main()
