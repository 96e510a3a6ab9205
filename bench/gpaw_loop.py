"""The exploration loop with real DFT: GPAW on 8-atom Si cells (issue 12's "one small run").

Three steps, each resumable (files are written once and read back):

    OMP_NUM_THREADS=1 python bench/gpaw_loop.py --out gpaw_run test      # GPAW's own test set
    OMP_NUM_THREADS=1 python bench/gpaw_loop.py --out gpaw_run run --budget 32
    python bench/gpaw_loop.py --out gpaw_run report                      # errors, label times, E–V

``test`` labels, at the run's DFT settings, a 9-point E–V series of the 8-atom diamond cell
(a = 5.476 Å × [0.96, 1.04]) and frames of GPAW's own Langevin MD of the 8-atom cell at
300 and 900 K (one GPAW calculator per trajectory, wavefunctions reused between steps).
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


def gpaw_oracle():
    from alip.data.oracles import make_oracle

    return make_oracle(GPAW_SPEC)


def make_test(path: str, md_steps: int, every: int, seed: int) -> None:
    """The test set: E–V series + GPAW MD frames at 300 and 900 K (labels attached)."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin

    from alip.data.io import attach_label, write_extxyz
    from alip.explore.trajectories import thermalize

    oracle = gpaw_oracle()
    frames, times = [], []
    for a in A0_GPAW * np.linspace(0.96, 1.04, 9):
        atoms = bulk("Si", "diamond", a=float(a), cubic=True)
        t0 = time.perf_counter()
        e, f, s = oracle.compute(atoms)
        times.append(time.perf_counter() - t0)
        frames.append(attach_label(atoms, e, f, s))
        frames[-1].info.update(family="volume", a=float(a))
        print(f"volume a={a:.3f}: {e / 8:.4f} eV/atom, {times[-1]:.0f} s", flush=True)
    rng = np.random.default_rng(seed)
    for temperature in (300.0, 900.0):
        atoms = bulk("Si", "diamond", a=A0_GPAW, cubic=True)
        atoms.calc = oracle.make_calculator(atoms)
        thermalize(atoms, 2 * temperature, rng)  # equipartition brings it near temperature
        dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=rng)
        t0 = time.perf_counter()
        for step in range(every, md_steps + 1, every):
            dyn.run(every)
            frame = attach_label(
                atoms, atoms.get_potential_energy(force_consistent=True), atoms.get_forces(), atoms.get_stress()
            )
            frame.info.update(family=f"md_crystal_{temperature:.0f}K", md_step=step)
            frames.append(frame)
            print(f"MD {temperature:.0f} K step {step}: T = {atoms.get_temperature():.0f} K", flush=True)
        print(f"MD {temperature:.0f} K: {md_steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    write_extxyz(path + ".tmp", frames)
    os.replace(path + ".tmp", path)
    print(f"{len(frames)} test structures -> {path}; E–V labels {np.mean(times):.0f} s each")


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


def report(out: str) -> None:
    from ase.build import bulk

    from alip.al.run_dir import read_iterations
    from alip.data.io import read_extxyz
    from alip.data.store import LabelStore
    from alip.models.calculator import Calculator
    from alip.models.eos import fit_eos

    run = os.path.join(out, "run")
    store = LabelStore(os.path.join(run, "labels.db"))
    n_atoms, secs = store.label_times()
    print(f"labels: {store.counts()}; oracle time per label: mean {secs.mean():.1f} s, "
          f"median {np.median(secs):.1f} s, range {secs.min():.1f}–{secs.max():.1f} s ({len(secs)} labels, "
          f"{sorted(set(n_atoms.tolist()))} atoms)")
    temps = [store.get(i).info.get("explore_temperature") for i in store.ids("labeled")]
    print("labels by origin temperature:", {str(t): temps.count(t) for t in sorted(set(map(str, temps)))})
    print("| iteration | labels | crystal 300 K F / E | crystal 900 K F / E | E–V E RMSE meV/atom | candidates / frames |")
    print("|---|---|---|---|---|---|")
    for r in read_iterations(run):
        bf = r["errors_by_family"]
        cells = [
            f"{bf[k]['force_rmse_ev_per_ang']:.3f} / {bf[k]['energy_rmse_mev_per_atom']:.1f}"
            for k in ("md_crystal_300K", "md_crystal_900K")
        ]
        ex = r.get("explore", {})
        cand = f"{ex.get('n_candidates', '–')} / {ex.get('trust', {}).get('n_frames', '–')}" if ex else "–"
        print(f"| {r['iteration']} | {r['n_labels']} | {cells[0]} | {cells[1]} | "
              f"{bf['volume']['energy_rmse_mev_per_atom']:.1f} | {cand} |")
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
    fd, fm = fit_eos(v, e_dft), fit_eos(v, np.array(e_model))
    rmse = 1e3 * np.sqrt(np.mean((np.array(e_model) - fm["e0"] - (e_dft - fd["e0"])) ** 2))
    print(f"E–V (8-atom cell, a = {A0_GPAW} × [0.96, 1.04], 9 points): GPAW a0 {fd['a0']:.3f} Å, B0 {fd['B0']:.1f} GPa; "
          f"committee a0 {fm['a0']:.3f} Å, B0 {fm['B0']:.1f} GPa, e0 off by {1e3 * (fm['e0'] - fd['e0']):+.1f} "
          f"meV/atom, shape RMSE (minima aligned) {rmse:.1f} meV/atom")
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump({"gpaw": fd, "committee": fm, "label_seconds": secs.tolist()}, fh, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpaw_run")
    ap.add_argument("step", choices=["test", "run", "report"])
    ap.add_argument("--budget", type=int, default=32)
    ap.add_argument("--md-steps", type=int, default=40, help="GPAW MD steps per test temperature (2 fs)")
    ap.add_argument("--every", type=int, default=8, help="steps between test frames")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    test = os.path.abspath(os.path.join(args.out, "test.extxyz"))
    if args.step == "test":
        if os.path.isfile(test):
            print(f"{test} exists")
        else:
            make_test(test, args.md_steps, args.every, seed=0)
    elif args.step == "run":
        from alip.al.loop import run

        t0 = time.time()
        res = run(config(os.path.join(args.out, "run"), test, args.budget), resume=True)
        print(f"run: {time.time() - t0:.0f} s; {res}")
    else:
        report(args.out)


if __name__ == "__main__":
    main()
