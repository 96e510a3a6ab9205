"""alip's import of an n2p2 potential against n2p2 itself (its ``nnp-predict`` program).

    python bench/n2p2_check.py --nnp-predict /path/to/nnp-predict \\
        --potential ../shared/data/mlearn-si/peers/nnp --structures ../shared/data/mlearn-si/test.extxyz

For every structure: writes n2p2's ``input.data`` (in the potential's units), runs
``nnp-predict 0`` in a scratch directory holding the potential's files, reads the energy
and forces from its ``output.data`` and compares them with the committee that
:func:`alip.models.n2p2.import_n2p2` builds. Prints the largest differences (energy per
atom in meV, force components in eV/Å) and exits 1 when they exceed ``--tol-energy`` /
``--tol-force``, listing the structures that differ. n2p2 is not a dependency of alip:
build ``nnp-predict`` from n2p2's sources, e.g. (Eigen headers: ``apt-get install libeigen3-dev``)::

    for f in n2p2/src/libnnp/*.cpp; do g++ -O1 -std=c++17 -DN2P2_NO_MPI -I/usr/include/eigen3 \\
        -In2p2/src/libnnp -c $f -o $(basename $f .cpp).o; done
    g++ -O1 -std=c++17 -DN2P2_NO_MPI -I/usr/include/eigen3 -In2p2/src/libnnp \\
        n2p2/src/application/nnp-predict.cpp *.o -o nnp-predict
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from ase import Atoms
from ase.io import read

from alip.models.n2p2 import ENERGY_UNITS, LENGTH_UNITS, import_n2p2


def write_input_data(path: str, atoms: Atoms, L: float) -> None:
    """n2p2's structure file: lattice vectors and positions in the potential's length unit."""
    lines = ["begin", "comment written by bench/n2p2_check.py"]
    if atoms.pbc.any():
        if not atoms.pbc.all():
            raise ValueError("n2p2 needs a structure periodic in all three directions or in none")
        lines += [f"lattice {v[0]:.16e} {v[1]:.16e} {v[2]:.16e}" for v in atoms.cell.array / L]
    for s, p in zip(atoms.get_chemical_symbols(), atoms.positions / L):
        lines.append(f"atom {p[0]:.16e} {p[1]:.16e} {p[2]:.16e} {s} 0.0 0.0 0.0 0.0 0.0")
    lines += ["energy 0.0", "charge 0.0", "end"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def read_output_data(path: str) -> tuple[float, np.ndarray]:
    """Energy and forces of the one structure in n2p2's ``output.data`` (potential's units)."""
    energy, forces = None, []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            w = line.split()
            if w and w[0] == "atom":
                forces.append([float(x) for x in w[7:10]])
            elif w and w[0] == "energy":
                energy = float(w[1])
    if energy is None:
        raise ValueError(f"no energy in {path}")
    return energy, np.array(forces)


def n2p2_predict(binary: str, potential: str, atoms: Atoms, L: float, U: float) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of ``atoms`` from ``nnp-predict``."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(potential):
            if f == "input.nn" or f == "scaling.data" or (f.startswith("weights.") and f.endswith(".data")):
                shutil.copy(os.path.join(potential, f), tmp)
        write_input_data(os.path.join(tmp, "input.data"), atoms, L)
        run = subprocess.run([binary, "0"], cwd=tmp, capture_output=True, text=True)
        if run.returncode != 0 or not os.path.isfile(os.path.join(tmp, "output.data")):
            log_file = os.path.join(tmp, "nnp-predict.log")
            log = open(log_file, encoding="utf-8").read()[-2000:] if os.path.isfile(log_file) else ""
            raise RuntimeError(f"nnp-predict failed ({run.returncode}):\n{run.stdout[-2000:]}\n{log}")
        e, f = read_output_data(os.path.join(tmp, "output.data"))
    return e * U, f * U / L


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nnp-predict", required=True, help="n2p2's nnp-predict executable")
    p.add_argument("--potential", required=True, help="directory with input.nn, scaling.data, weights.ZZZ.data")
    p.add_argument("--structures", required=True, help="any ASE-readable file of structures")
    p.add_argument("--length-unit", default="bohr", help=f"{sorted(LENGTH_UNITS)} (default bohr)")
    p.add_argument("--energy-unit", default="hartree", help=f"{sorted(ENERGY_UNITS)} (default hartree)")
    p.add_argument("--tol-energy", type=float, default=1e-6, help="meV/atom (default 1e-6)")
    p.add_argument("--tol-force", type=float, default=1e-8, help="eV/Å (default 1e-8)")
    args = p.parse_args(argv)
    committee = import_n2p2(args.potential, args.length_unit, args.energy_unit)
    L, U = committee.metadata["length_unit_angstrom"], committee.metadata["energy_unit_ev"]
    frames = read(args.structures, ":")
    cutoff = committee.acsf.cutoff
    pred = committee.predict(frames)
    de, df = [], []
    for s, atoms in enumerate(frames):
        e, f = n2p2_predict(args.nnp_predict, args.potential, atoms, L, U)
        sl = slice(pred.offsets[s], pred.offsets[s + 1])
        de.append(abs(pred.energies[0, s] - e) / len(atoms) * 1e3)
        df.append(np.abs(pred.forces[0, sl] - f).max())
        if de[-1] > args.tol_energy or df[-1] > args.tol_force:
            short = float(atoms.cell.lengths().min()) if atoms.pbc.any() else float("inf")
            note = " (a cell vector shorter than the cutoff: atoms see their own images)" if short < cutoff else ""
            print(
                f"structure {s}: {len(atoms)} atoms, |ΔE| {de[-1]:.3e} meV/atom, |ΔF| {df[-1]:.3e} eV/Å, "
                f"shortest cell vector {short:.4f} Å{note}"
            )
    print(
        f"{len(frames)} structures, {pred.offsets[-1]} atoms: max |ΔE| {max(de):.3e} meV/atom, "
        f"max |ΔF| {max(df):.3e} eV/Å (alip vs nnp-predict)"
    )
    return 0 if max(de) <= args.tol_energy and max(df) <= args.tol_force else 1


if __name__ == "__main__":
    sys.exit(main())
